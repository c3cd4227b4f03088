"""Home: what each page teaches, the compute device, and the models that ship with the app."""

import pandas as pd
import streamlit as st

import ui
import vizlib
from vizlib import zoo

st.title("CNN & ViT Visualiser")
st.markdown(
    "Interactive figures for understanding convolutional networks and Vision Transformers: "
    "every number is computed and every picture drawn from a real model or real data, live, "
    f"on **{vizlib.describe_device(ui.current_device())}**."
)

# The pages by the sidebar's sections, in its order, so the cards read as the sidebar does.
GUIDE = {
    "Convolutions": [
        (
            "app_pages/conv_playground.py",
            "Convolution Playground",
            "Kernel size, stride, padding, dilation, channels and groups, live, for ordinary and transposed "
            "layers: output sizes with the formula in your numbers, parameters and multiply-adds, the "
            "footprint stepping over the grid, receptive fields and how much each pixel of one really "
            "counts, filters applied to real images and weather "
            "fields, and 1-D convolution written out term by term.",
        ),
    ],
    "Inside CNNs": [
        (
            "app_pages/model_inspector.py",
            "Model Inspector",
            "Layer by layer: output shapes, parameters, multiply-adds and receptive fields from a real "
            "forward pass, and the effective field: which pixels a unit really responds to.",
        ),
        (
            "app_pages/learned_filters.py",
            "Filters & Feature Maps",
            "What the network learned: first-layer filters, before and after training, activation maps and "
            "the images that excite a channel most.",
        ),
        (
            "app_pages/activations.py",
            "Activations & Gradients",
            "Every layer's output over a batch: its spread, its zeros and dead units, NaNs, and the "
            "gradient that reaches it, beside the same network before training.",
        ),
        (
            "app_pages/attributions.py",
            "Attributions",
            "Why it decided: Saliency, Integrated Gradients, Grad-CAM and Occlusion (Captum), side by "
            "side, and a sanity check: do the maps change when the weights are made random?",
        ),
        (
            "app_pages/adversarial.py",
            "Adversarial Examples",
            "How fragile it is: a change of a few grey levels per pixel (FGSM, PGD) that flips the "
            "answer, and the accuracy as the budget grows.",
        ),
        (
            "app_pages/calibration.py",
            "Predictions & Calibration",
            "Where it is wrong and whether its confidence says so: the reliability diagram, "
            "temperature scaling, the confusion matrix and the surest mistakes, on clean, rotated, "
            "blurred or noisy images.",
        ),
        (
            "app_pages/embeddings.py",
            "Embeddings (t-SNE)",
            "Watch the classes separate layer by layer: t-SNE (on the GPU when there is one) or PCA, with "
            "quality measures for each map.",
        ),
        (
            "app_pages/layer_similarity.py",
            "Layer Similarity (CKA)",
            "Which layers see the images alike: every layer against every other, against the same "
            "network before training, or a CNN against a ViT (Raghu et al., 2021).",
        ),
    ],
    "Vision Transformers": [
        (
            "app_pages/vit_attention.py",
            "ViT Attention",
            "Mean attention distance per head and layer, attention maps and rollout (ViT paper, "
            "Fig. 6 and 7), and which heads the answers depend on.",
        ),
        (
            "app_pages/position_embeddings.py",
            "Position Embeddings",
            "Learned position-embedding similarity, patch-embedding filters, and the sinusoidal encoding.",
        ),
    ],
    "Training": [
        (
            "app_pages/training.py",
            "Training Lab",
            "Train a small CNN or ViT on the digits live: optimiser, learning rate, batch size, "
            "initialisation and augmentation; loss, accuracy, gradients and filters epoch by epoch; "
            "runs compared; weights to open on the other pages.",
        ),
    ],
}

for section, guide in GUIDE.items():
    st.markdown(f"**{section}**")
    # One row of two cards at a time: cards side by side start level, and the reading order
    # (left to right, then down) is the sidebar's.
    for first in range(0, len(guide), 2):
        for column, (path, title, blurb) in zip(
            st.columns(2), guide[first : first + 2], strict=False
        ):
            with column.container(border=True):
                st.page_link(path, label=title, icon=":material/arrow_forward:")
                st.caption(blurb)

st.subheader("Models that ship with the app")


def training(meta: dict) -> str:
    """Return how the checkpoint was trained, in words: "30 epochs, 27 s on CPU (1 thread)"."""
    parts = [f"{meta['epochs']} epochs"] if meta.get("epochs") else []
    seconds = meta.get("training_time_s")
    if seconds is not None:
        took = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
        parts.append(took + (f" on {meta['device']}" if meta.get("device") else ""))
    return ", ".join(parts) or "not recorded"


rows = []
for name in zoo.checkpoint_names():
    meta = zoo.checkpoint_metadata(name)
    rows.append(
        {
            "model": name,
            "architecture": meta["architecture"],
            "dataset": meta["dataset"],
            "input (C×H×W)": "×".join(str(s) for s in meta["input_size"]),
            "test accuracy (%)": None
            if meta["test_accuracy"] is None
            else 100 * meta["test_accuracy"],
            "test images": meta.get("test_samples"),
            "training": training(meta),
        }
    )
if rows:
    # a static table: its columns wrap to the page's width, so none is cut off on a 1024-pixel
    # projector (the interactive grid hid the training time and device off its right edge)
    st.table(
        pd.DataFrame(rows)
        .set_index("model")
        .style.format({"test accuracy (%)": "{:.1f}"}, na_rep="n/a")
    )
else:
    st.warning("No checkpoints found in `checkpoints/`: train them with `python -m vizlib.train`.")
st.caption(
    "Torchvision's alexnet, vgg16, resnet18 and vit_b_16 are offered too, with their ImageNet weights "
    "when those are already in the torch hub cache (`TORCH_HOME`), else with random weights and a notice."
)
