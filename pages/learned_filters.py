import streamlit as st

st.title("learned_filters")
st.info("Under construction.")
