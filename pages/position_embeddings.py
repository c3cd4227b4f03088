import streamlit as st

st.title("position_embeddings")
st.info("Under construction.")
