"""Entry point: registers the pages and draws the shared sidebar (compute device).

The page files live in ``app_pages/``, not ``pages/``: Streamlit treats a folder named ``pages/``
beside the entry point as a legacy multipage app, and a first visit straight to a page's URL then
runs that page without this router (no sidebar, no wide layout).
"""

from pathlib import Path

import streamlit as st

import ui
from ui import links

st.set_page_config(
    page_title="CNN & ViT Visualiser",
    page_icon=str(Path(__file__).parent / "assets" / "favicon.png"),
    layout="wide",
)

PAGES = {
    "": [st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Convolutions": [
        st.Page(
            "app_pages/conv_playground.py",
            title="Convolution Playground",
            icon=":material/grid_on:",
        ),
    ],
    "Inside CNNs": [
        st.Page(
            "app_pages/model_inspector.py", title="Model Inspector", icon=":material/account_tree:"
        ),
        st.Page(
            "app_pages/learned_filters.py", title="Filters & Feature Maps", icon=":material/filter:"
        ),
        st.Page(
            "app_pages/activations.py",
            title="Activations & Gradients",
            icon=":material/monitoring:",
        ),
        st.Page("app_pages/attributions.py", title="Attributions", icon=":material/target:"),
        st.Page(
            "app_pages/adversarial.py",
            title="Adversarial Examples",
            icon=":material/bug_report:",
        ),
        st.Page(
            "app_pages/calibration.py",
            title="Predictions & Calibration",
            icon=":material/fact_check:",
        ),
        st.Page(
            "app_pages/embeddings.py", title="Embeddings (t-SNE)", icon=":material/scatter_plot:"
        ),
        st.Page(
            "app_pages/layer_similarity.py",
            title="Layer Similarity (CKA)",
            icon=":material/compare:",
        ),
    ],
    "Vision Transformers": [
        st.Page("app_pages/vit_attention.py", title="ViT Attention", icon=":material/visibility:"),
        st.Page(
            "app_pages/position_embeddings.py",
            title="Position Embeddings",
            icon=":material/grid_view:",
        ),
    ],
    "Training": [
        st.Page("app_pages/training.py", title="Training Lab", icon=":material/model_training:"),
    ],
}

# every page listed: with more than twelve, Streamlit would hide the last three (the ViT pages
# and the Training Lab) behind "View 3 more"
navigation = st.navigation(PAGES, expanded=True)
ui.sidebar_device()
with links.parking(every_setting=True):  # settings whose widget the page did not draw: aside
    navigation.run()
