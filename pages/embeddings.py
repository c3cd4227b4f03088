import streamlit as st

st.title("embeddings")
st.info("Under construction.")
