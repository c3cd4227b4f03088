"""Entry point: registers the pages and draws the shared sidebar (compute device)."""

import streamlit as st

import ui

st.set_page_config(page_title="CNN & ViT Visualiser", page_icon=":material/blur_on:", layout="wide")

PAGES = {
    "": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Convolutions": [
        st.Page(
            "pages/conv_playground.py", title="Convolution Playground", icon=":material/grid_on:"
        ),
    ],
    "Inside CNNs": [
        st.Page(
            "pages/model_inspector.py", title="Model Inspector", icon=":material/account_tree:"
        ),
        st.Page(
            "pages/learned_filters.py", title="Filters & Feature Maps", icon=":material/filter:"
        ),
        st.Page("pages/attributions.py", title="Attributions", icon=":material/target:"),
        st.Page("pages/embeddings.py", title="Embeddings (t-SNE)", icon=":material/scatter_plot:"),
    ],
    "Vision Transformers": [
        st.Page("pages/vit_attention.py", title="ViT Attention", icon=":material/visibility:"),
        st.Page(
            "pages/position_embeddings.py", title="Position Embeddings", icon=":material/grid_view:"
        ),
    ],
}

navigation = st.navigation(PAGES)
ui.sidebar_device()
navigation.run()
