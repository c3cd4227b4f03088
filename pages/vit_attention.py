import streamlit as st

st.title("vit_attention")
st.info("Under construction.")
