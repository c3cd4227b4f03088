"""Model Inspector: per-layer shapes, parameters and multiply-adds of a shipped, torchvision or
uploaded model; transformer building blocks; why batching matters."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st
import torch

import ui
from vizlib import summary, zoo
from vizlib.data import available_datasets
from vizlib.plots.models import plot_batch_timing, plot_layer_costs

st.title("Model Inspector")
st.caption(
    "Open a network layer by layer: every output shape, parameter count and multiply-add below "
    "comes from a real forward pass of one sample through the model, recorded with hooks."
)

device = str(ui.current_device())
datasets_status = available_datasets()
SOURCE_ZOO = "Shipped or torchvision model"
SOURCE_UPLOAD = "Upload weights"


@st.cache_data(max_entries=16, show_spinner=False)
def zoo_layer_rows(name: str, device: str) -> list[dict]:
    """Layer table of a zoo model, computed once per (name, device)."""
    model, meta, lock = ui.cached_model(name, device)
    with lock:  # layer_table registers hooks on the shared model
        return summary.layer_table(model, meta["input_size"])


@st.cache_data(max_entries=4, show_spinner=False)
def block_counts() -> list[dict]:
    return summary.transformer_block_counts()


def load_upload(data: bytes, architecture: str):
    """Model, metadata and layer table of uploaded bytes, kept in this session only (never
    shared), so that a rerun (a toggle) does not repeat the forward pass."""
    key = (hashlib.sha256(data).hexdigest(), architecture)
    cache = st.session_state.setdefault("inspector.upload_cache", {})
    if key not in cache:
        cache.clear()  # one upload at a time per session
        model, meta = zoo.load_uploaded(data, architecture)
        cache[key] = (model, meta, summary.layer_table(model, meta["input_size"]))
    return cache[key]


# ---- model choice -------------------------------------------------------------------------
names = zoo.list_models()
query_model = st.query_params.get("model")
source = st.radio(
    "Model source",
    [SOURCE_ZOO, SOURCE_UPLOAD],
    horizontal=True,
    key="inspector.source",
    index=1 if query_model == "upload" else 0,
)

model = meta = rows = None
if source == SOURCE_ZOO:
    name = st.selectbox(
        "Model",
        names,
        index=ui.linked_index("model", names, accepted=("upload",)),
        key="inspector.model",
        help="Checkpoints trained on the bundled digits ship with the app; torchvision "
        "architectures use their ImageNet weights only when already in the torch hub cache.",
    )
    st.query_params["model"] = name
    try:
        model, meta, _lock = ui.cached_model(name, device)
        with st.spinner(f"Running {name} once to record its layers…", show_time=True):
            rows = zoo_layer_rows(name, device)
    except (ValueError, RuntimeError) as err:
        st.error(f"Could not load {name}: {err}")
    except torch.cuda.OutOfMemoryError:
        st.error(f"The GPU ran out of memory loading {name}; pick the CPU in the sidebar.")
else:
    st.query_params["model"] = "upload"
    col_file, col_arch = st.columns([2, 1])
    upload_limit_mb = int(st.get_option("server.maxUploadSize"))
    architecture = col_arch.selectbox(
        "Architecture of the weights",
        zoo.upload_architectures(),
        key="inspector.upload_arch",
        help="The uploaded state_dict must match this architecture key by key and shape by shape.",
    )
    upload = col_file.file_uploader(
        "Weights (.safetensors, or a .pt/.pth state_dict)",
        type=["safetensors", "pt", "pth"],
        key="inspector.upload",
        help="Pickled files are read with torch.load(weights_only=True): anything but tensors "
        f"is refused. Limit {min(zoo.MAX_UPLOAD_BYTES // 2**20, upload_limit_mb)} MB.",
    )
    if upload is None:
        st.info("Upload a weights file to inspect it, or switch to a shipped model.")
    else:
        try:
            with st.spinner("Checking and loading the weights…", show_time=True):
                model, meta, rows = load_upload(upload.getvalue(), architecture)
            st.success(f"Loaded {upload.name} into {architecture}: every key and shape matched.")
        except ValueError as err:
            col_file.error(str(err))

if meta is not None and meta.get("notice"):
    st.warning(meta["notice"], icon=":material/warning:")

# ---- metadata -----------------------------------------------------------------------------
if meta is not None and rows is not None:
    totals = summary.table_totals(rows)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Parameters", f"{totals['params']:,}")
    c2.metric("Multiply-adds per sample", f"{totals['macs']:,}")
    acc = meta.get("test_accuracy")
    c3.metric(
        f"Test accuracy ({meta.get('dataset')})",
        "n/a" if acc is None else f"{acc:.2%}",
        help="Recorded when the checkpoint was trained; ImageNet top-1 for torchvision weights.",
    )
    c4.metric("Input (C, H, W)", " x ".join(str(v) for v in meta["input_size"]))
    details = {
        "architecture": meta.get("architecture"),
        "family": meta.get("family"),
        "source": meta.get("source"),
        "dataset": meta.get("dataset"),
        "classes": len(meta.get("class_names") or []),
        "pretrained weights": meta.get("pretrained"),
    }
    for key, label in (
        ("training_time_s", "training time (s)"),
        ("device", "trained on"),
        ("epochs", "epochs"),
        ("seed", "seed"),
        ("patch_size", "patch size (pixels)"),
        ("grid_size", "patch grid"),
    ):
        if meta.get(key) is not None:
            details[label] = meta[key]
    st.dataframe(
        pd.DataFrame({"property": list(details), "value": [str(v) for v in details.values()]}),
        hide_index=True,
        width="stretch",
    )

    # ---- per-layer table ------------------------------------------------------------------
    st.subheader("Layers")
    st.caption(
        "Rows in call order. Multiply-adds count convolutions, linear layers and the two "
        "attention products (QK^T and AV); biases, norms, activations and pooling count zero. "
        "Output shapes include a batch of 1."
    )
    table = pd.DataFrame(
        {
            "layer": [r["name"] for r in rows],
            "type": [r["type"] for r in rows],
            "output shape": [
                "not called" if r["output_shape"] is None else str(tuple(r["output_shape"]))
                for r in rows
            ],
            "parameters": [r["params"] for r in rows],
            "multiply-adds": [r["macs"] for r in rows],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=min(600, 36 * (len(table) + 1)),
        column_config={
            "parameters": st.column_config.NumberColumn(format="localized"),
            "multiply-adds": st.column_config.NumberColumn(format="localized"),
        },
    )
    st.download_button(
        "Download the layer table (CSV)",
        table.to_csv(index=False).encode(),
        file_name=f"{meta.get('name', 'model')}_layers.csv".replace(" ", "_"),
        mime="text/csv",
        key="inspector.download_csv",
    )
    log_x = st.toggle("Logarithmic axes", key="inspector.log", value=False)
    st.plotly_chart(plot_layer_costs(rows, log_x=log_x), key="inspector.costs")

    with st.expander("print(model): torch's own description"):
        st.code(str(model), language="text")

with st.expander("Datasets available offline"):
    st.caption(
        "Nothing is downloaded at run time. The bundled digits always work; MNIST, FashionMNIST "
        "and CIFAR10 are read when their files already sit under the folder named by the "
        "VIZLIB_DATA environment variable."
    )
    st.dataframe(
        pd.DataFrame({"dataset": list(datasets_status), "status": list(datasets_status.values())}),
        hide_index=True,
        width="stretch",
    )

# ---- transformer blocks -------------------------------------------------------------------
st.subheader("Transformer building blocks")
st.caption(
    "Parameter counts of torch's own modules with d_model = 6, 2 heads, counted from the built modules."
)
st.dataframe(pd.DataFrame(block_counts()), hide_index=True, width="stretch")


# ---- batching demo ------------------------------------------------------------------------
@st.fragment
def batching_demo() -> None:
    st.subheader("Why frameworks batch")
    st.caption(
        "One dense layer y = W x with W of 1,500 x 1,000, applied to N inputs of 1,000 values: "
        "a Python loop over the samples against one batched matrix product."
    )
    n_samples = st.number_input(
        "Samples N", min_value=10, max_value=10_000, value=2_500, step=100, key="inspector.n"
    )
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if st.button("Time it", key="inspector.time", icon=":material/timer:"):
        results = []
        with st.spinner(f"Timing on {', '.join(devices)}…", show_time=True):
            for dev in devices:
                try:
                    results.append(
                        summary.batch_matmul_timing(n_samples=int(n_samples), repeats=2, device=dev)
                    )
                except (ValueError, RuntimeError) as err:
                    st.error(f"Timing on {dev} failed: {err}")
        st.session_state["inspector.timings"] = results
    results = st.session_state.get("inspector.timings")
    if results:
        cols = st.columns(len(results))
        for col, r in zip(cols, results, strict=True):
            col.metric(
                f"Speed-up on {r['device']} (N = {r['n_samples']:,})",
                f"{r['speedup']:.1f}x",
                help=f"loop {r['loop_s']:.4f} s, batched {r['batched_s']:.4f} s "
                f"(best of 2); results agree to {r['max_abs_diff']:.1e}",
            )
        st.plotly_chart(plot_batch_timing(results), key="inspector.timing_chart")
        st.download_button(
            "Download the timings (CSV, seconds)",
            pd.DataFrame(results).to_csv(index=False),
            file_name="batching_timings.csv",
            mime="text/csv",
            key="inspector.download_timings",
        )
        if not torch.cuda.is_available():
            st.caption("No CUDA GPU on this machine: only the CPU was timed.")


batching_demo()
