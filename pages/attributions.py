import streamlit as st

st.title("attributions")
st.info("Under construction.")
