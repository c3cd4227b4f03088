"""Position Embeddings: learned position-embedding similarity, patch-embedding principal
components, and the Transformer's sinusoidal encoding for comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from ui import count_slider, file_stem, links
from ui.vit import PATCH_NUMBERING, ModelChoice, get_model, pick_vit
from vizlib import posembed
from vizlib.plots.export import to_npy_bytes
from vizlib.plots.vit import (
    plot_patch_components,
    plot_position_similarity,
    plot_sinusoidal_encoding,
    plot_sinusoidal_similarity,
)

P = "position_embeddings."  # widget-key namespace of this page
K_DEFAULT = 28  # principal components shown by default, as in the paper's Figure 7 (left)
MAX_K = 64
# every key the page's link may hold: the model (written by pick_vit), then the settings
LINK_KEYS = {"k", "pos", "dim"}  # and the picker's model and arch (links.PICKER_KEYS)


def link_settings(rank: int, n_patches: int, width: int) -> dict[str, links.Table]:
    """Return the settings that follow the model, by section: query key -> (widget key, default,
    allowed) for patch-embedding filters of ``rank`` principal components, ``n_patches``
    patches and embeddings of ``width`` dimensions."""
    high = min(rank, MAX_K)
    return {
        "filters": {"k": (P + "k", min(K_DEFAULT, high), (1, high))},
        "sinusoidal": {  # the learned embedding's size by default, side by side
            "pos": (P + "n_positions", min(max(n_patches, 2), 512), (2, 512)),
            "dim": (P + "dim", min(max(width, 2), 1024), (2, 1024)),
        },
    }


def follow_model(table: links.Table) -> None:
    """A setting still at the last model's default takes the new model's (the positions and
    dimensions of its embeddings, its number of components); one the user moved stays."""
    defaults = {wkey: default for wkey, default, _ in table.values()}
    before = st.session_state.get(P + "defaults", defaults)
    for wkey, default in defaults.items():
        if wkey in before and st.session_state.get(wkey) == before[wkey]:
            st.session_state[wkey] = default
    st.session_state[P + "defaults"] = defaults


st.title("Position Embeddings")
st.caption(
    "What a Vision Transformer learns about space before any attention: Dosovitskiy et al., "
    "*An Image is Worth 16x16 Words* (ICLR 2021), Figure 7 (left and centre)."
)


@st.cache_data(max_entries=8, show_spinner=False)
def similarity(choice: ModelChoice) -> tuple[np.ndarray, np.ndarray, int]:
    """(gh, gw, gh, gw) cosine similarities, every token's position embedding (T, D), prefix
    tokens first, and the number of prefix tokens."""
    model, _, _ = get_model(choice)
    emb = posembed.vit_embeddings(model)
    sim = posembed.position_similarity(emb.pos_embed, emb.grid_size, emb.num_prefix_tokens)
    return sim.numpy(), emb.pos_embed.numpy(), emb.num_prefix_tokens


@st.cache_data(max_entries=8, show_spinner=False)
def embeddings_csv(choice: ModelChoice) -> str:
    """The (T, D) position embeddings as CSV: one row per token, which token it is, then one
    column per dimension (vit_b_16's 197 x 768 take 0.2 s to write: once per model)."""
    sim, pos, n_prefix = similarity(choice)
    gw = sim.shape[1]
    patches = np.arange(len(pos) - n_prefix)
    prefix = ["class token"] if n_prefix == 1 else [f"prefix token {i}" for i in range(n_prefix)]
    head = pd.DataFrame(
        {
            "token": prefix + [f"patch {i}" for i in patches],
            "patch_row": [None] * n_prefix + list(patches // gw),
            "patch_column": [None] * n_prefix + list(patches % gw),
        }
    ).astype({"patch_row": "Int64", "patch_column": "Int64"})
    values = pd.DataFrame(pos, columns=[f"dim_{d}" for d in range(pos.shape[1])])
    return pd.concat([head, values], axis=1).to_csv(index=False)


@st.cache_data(max_entries=8, show_spinner=False)
def components(choice: ModelChoice, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(k, C, P, P) principal components and their explained-variance ratios."""
    model, _, _ = get_model(choice)
    weight = posembed.vit_embeddings(model).patch_weight
    comps, ratios = posembed.patch_embedding_components(weight, k=k)
    return comps.numpy(), ratios.numpy()


picked = pick_vit("position_embeddings")  # the model and the upload's architecture travel too
if picked is None:
    st.stop()
choice, model, meta, _lock = picked
try:
    sim, pos_all, n_prefix = similarity(choice)
except (TypeError, ValueError) as err:
    st.error(f"This model's embeddings cannot be shown: {err}")
    st.stop()
gh, gw = sim.shape[:2]
learned = pos_all[n_prefix:]  # (N, D) the patches' rows
stem = file_stem(meta["name"])
# the D filters of C*P*P values have at most min(D, C*P*P) components; the paper shows 28
D, C, P_SIDE, _ = posembed.vit_embeddings(model).patch_weight.shape
rank = min(D, C * P_SIDE * P_SIDE)
tables = link_settings(rank, gh * gw, learned.shape[1])
settings = tables["filters"] | tables["sinusoidal"]
# read from the link once a model is there to check them against (?model=upload waits)
for warning in links.load_settings(settings, prefix=P, from_link=links.first_visit(P)):
    st.warning(warning, icon=":material/link_off:")
follow_model(settings)

# --- Position-embedding similarity -------------------------------------------------------------
st.header("Position embedding similarity")
# the grid is square (620 px high): in a wider column its colour bar stood far off to the right
with st.container(width=720):
    st.plotly_chart(
        plot_position_similarity(sim, title=f"{meta['name']}: cosine similarity, patch to patch"),
        key="position_embeddings.similarity_chart",
    )
st.caption(
    f"Tile (row r, column c) shows the cosine similarity between the learned position embedding "
    f"of patch (r, c) and those of all {gh}×{gw} patches, on one colour scale from −1 to 1; "
    f"each {PATCH_NUMBERING}, as on the ViT Attention page and in the download. "
    "A trained ViT learns 2-D structure: nearby patches, and patches in the same row or column, "
    "get similar embeddings."
)
T, D = pos_all.shape
tokens = (
    f"the class token first, then the {gh * gw} patches row by row"
    if n_prefix == 1
    else f"{n_prefix} prefix tokens first, then the {gh * gw} patches row by row"
    if n_prefix
    else f"the {gh * gw} patches row by row"
)
st.markdown(
    f"**Downloads**: the learned position embeddings ({T} tokens × {D} dimensions: {tokens}) "
    f"and these similarities ({gh} × {gw} × {gh} × {gw}: patch row, column, row, column)."
)
d1, d2, d3 = st.columns(3)
d1.download_button(
    "Embeddings (NPY)",
    to_npy_bytes(pos_all, dtype=np.float32),
    file_name=f"position_embeddings_{stem}.npy",
    key="position_embeddings.download_embeddings",
    on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    help="The model's learned position embedding, one row per token (T × D, float32).",
)
d2.download_button(
    "Embeddings (CSV)",
    embeddings_csv(choice),
    file_name=f"position_embeddings_{stem}.csv",
    mime="text/csv",
    key="position_embeddings.download_embeddings_csv",
    on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    help="One row per token: which token (patch row and column counted from 0), then its "
    f"{D} values.",
)
d3.download_button(
    "Similarities (NPY)",
    to_npy_bytes(sim),
    file_name=f"position_similarity_{stem}.npy",
    key="position_embeddings.download_similarity",
    on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    help="[r, c, r2, c2]: cosine similarity of patch (r, c)'s embedding to patch (r2, c2)'s.",
)

# --- Patch-embedding filters -------------------------------------------------------------------
st.header("Patch-embedding filters")
k = count_slider(
    "Principal components",
    1,
    min(rank, MAX_K),
    K_DEFAULT,
    key=P + "k",
    help=f"Top principal components of the {D} patch-embedding filters (each C·P·P = "
    f"{C * P_SIDE * P_SIDE} values; at most {rank} components).",
)
links.save_settings(tables["filters"], prefix=P, keep=LINK_KEYS)
comps, ratios = components(choice, int(k))
st.plotly_chart(plot_patch_components(comps, ratios), key="position_embeddings.pca_chart")
channels = "RGB" if comps.shape[1] == 3 else "grey"
st.caption(
    f"Each tile is one principal component of the {meta['name']} patch-embedding weights, shown "
    f"as a {comps.shape[2]}×{comps.shape[3]} {channels} image (scaled to its own range), with the "
    f"share of variance it explains; together they explain {100 * ratios.sum():.1f}%. "
    f"Downloads: the components ({len(comps)} × {C} × {P_SIDE} × {P_SIDE}, unit vectors, not "
    "scaled) and their explained-variance ratios."
)
p1, p2, _ = st.columns(3)
p1.download_button(
    "Components (NPY)",
    to_npy_bytes(comps, dtype=np.float32),
    file_name=f"patch_embedding_components_{stem}.npy",
    key="position_embeddings.download_components",
    on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    help="The principal components as unit vectors reshaped to C × P × P, as they come from the "
    "PCA (not scaled for display), component 1 first.",
)
p2.download_button(
    "Explained variance (CSV)",
    pd.DataFrame(
        {"component": np.arange(1, len(ratios) + 1), "explained_variance_ratio": ratios}
    ).to_csv(index=False),
    file_name=f"patch_embedding_pca_{stem}.csv",
    mime="text/csv",
    key="position_embeddings.download_pca",
    on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    help="Share of the filters' variance each component explains, component 1 first.",
)


# --- Sinusoidal vs learned ---------------------------------------------------------------------
@st.fragment
def sinusoidal_panel() -> None:
    st.header("Sinusoidal encoding vs learned embedding")
    c1, c2 = st.columns(2)
    n_pos = count_slider(
        "Positions",
        2,
        512,
        gh * gw,
        key=P + "n_positions",
        where=c1,
        help=f"Rows of the sinusoidal encoding; {meta['name']} has {gh * gw} patches.",
    )
    dim = count_slider(
        "Dimensions",
        2,
        1024,
        learned.shape[1],
        key=P + "dim",
        where=c2,
        help=f"Width d of the encoding; {meta['name']}'s embeddings have {learned.shape[1]}.",
    )
    links.save_settings(tables["sinusoidal"], prefix=P, keep=LINK_KEYS)
    enc = posembed.sinusoidal_encoding(int(n_pos), int(dim))
    st.download_button(
        "Download the sinusoidal encoding (NPY, positions × dimensions)",
        to_npy_bytes(enc),
        file_name=f"sinusoidal_encoding_{int(n_pos)}x{int(dim)}.npy",
        key="position_embeddings.download_sinusoidal",
        on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    )
    left, right = st.columns(2)
    left.plotly_chart(plot_sinusoidal_encoding(enc), key="position_embeddings.sin_chart")
    right.plotly_chart(
        plot_sinusoidal_encoding(learned, title=f"Learned: {meta['name']} (patches)"),
        key="position_embeddings.learned_chart",
    )
    left.plotly_chart(
        plot_sinusoidal_similarity(posembed.sinusoidal_similarity(enc)),
        key="position_embeddings.sin_sim_chart",
    )
    learned_t = torch.from_numpy(learned)
    right.plotly_chart(
        plot_sinusoidal_similarity(
            posembed.sinusoidal_similarity(learned_t),
            title="Learned: dot products",  # a longer title was cut at 1024 px
        ),
        key="position_embeddings.learned_sim_chart",
    )
    st.caption(
        "Vaswani et al. (2017): PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = "
        "cos(pos / 10000^(2i/d)); the dot product between two positions depends only on their "
        "offset. The ViT instead learns one vector per patch (1-D, row-major order)."
    )


sinusoidal_panel()
