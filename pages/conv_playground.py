import streamlit as st

st.title("conv_playground")
st.info("Under construction.")
