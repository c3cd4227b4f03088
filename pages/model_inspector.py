import streamlit as st

st.title("model_inspector")
st.info("Under construction.")
