"""Adversarial Examples: a change to an image too small to see that changes the network's answer
(FGSM and PGD), and how fast accuracy falls as the budget grows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

import ui
from ui import count_slider, links
from ui.inside_cnns import (
    INPUT_LINK_KEYS,
    LoadedModel,
    dataset_for,
    input_picker,
    load_input_settings,
    missing_test_split,
    model_picker,
    save_input_settings,
)
from vizlib import adversarial, zoo
from vizlib.data.datasets import denormalize
from vizlib.plots import (
    confidence_percent,
    image_grid_png,
    perturbation_tile,
    plot_attack_accuracy,
    plot_captioned_images,
    plot_top_predictions,
    to_npy_bytes,
)

P = "adv"
MAX_EPS = 64  # grey levels of 255
CURVE_LEVELS = (0, 1, 2, 4, 8, 16, 32, 64)  # grey levels of 255 on the accuracy curve
LINK_KEYS = {"model", *INPUT_LINK_KEYS, "attack", "eps", "steps", "targeted", "target", "compare"}


def settings(n_classes: int, side: int) -> links.Table:
    """The page's shareable settings past the input: query key -> (widget key, default, allowed),
    for a model of ``n_classes`` classes and images ``side`` pixels across."""
    return {
        "attack": (f"{P}.attack", "PGD", adversarial.ATTACKS),
        # 4/255 already fools an ImageNet model; the digit models, whose 8 x 8 digits are
        # blown up to 28 x 28, hold out to about 16/255 (PGD: 92% right at 8/255, 5% at 32/255)
        "eps": (f"{P}.eps", 32 if side <= 64 else 4, (1, MAX_EPS)),
        "steps": (f"{P}.steps", 10, (1, 100)),
        "targeted": (f"{P}.targeted", False, (False, True)),
        "target": (f"{P}.target", 0, (0, n_classes - 1)),
    }


@st.cache_data(max_entries=32, show_spinner=False)
def attack_one(
    key: tuple, label: int, _pixels: torch.Tensor, _loaded: LoadedModel
) -> adversarial.AttackResult:
    """attack(...) of the input described by key = (model, device, input, attack, eps, steps,
    targeted)."""
    _, _, _, method, eps, steps, targeted = key
    meta = _loaded.meta
    return adversarial.attack(
        _loaded.model,
        _pixels,
        torch.tensor([label]),
        eps=eps / 255,
        mean=meta["mean"],
        std=meta["std"],
        method=method,
        steps=steps,
        targeted=targeted,
    )


st.title("Adversarial Examples")
st.caption(
    "Change every pixel by a few grey levels, each in the direction that raises the network's "
    "loss, and its answer changes while the image looks the same (Goodfellow et al., 2015). "
    "FGSM takes one step of the whole budget ε along the sign of the gradient; PGD takes "
    "several smaller ones, each kept within ε of the image (Madry et al., 2018)."
)

loaded = model_picker(P)
if loaded is None:
    st.stop()
meta = loaded.meta
classes = list(meta["class_names"] or [str(i) for i in range(1000)])
table = settings(len(classes), min(int(v) for v in meta["input_size"][1:]))
link_notes = st.container()
input_table, warnings = load_input_settings(P, meta, from_link=links.first_visit(f"{P}.input."))
for warning in [
    *warnings,
    *links.load_settings(table, prefix=f"{P}.", from_link=links.first_visit(f"{P}.")),
]:
    link_notes.warning(warning, icon=":material/link_off:")

left, right = st.columns([1, 2])
with left:
    chosen = input_picker(P, meta, purpose="attack it")
save_input_settings(P, input_table, keep=LINK_KEYS)
if chosen is None:
    st.stop()
with right:
    method = st.radio(
        "Attack",
        adversarial.ATTACKS,
        key=f"{P}.attack",
        horizontal=True,
        help="FGSM: one step of ε along the sign of the loss's gradient. PGD: several steps of "
        "2.5 ε / steps, each projected back within ε of the image and into the pixel range.",
    )
    eps = st.slider(
        "Budget ε (grey levels of 255)",
        1,
        MAX_EPS,
        key=f"{P}.eps",
        help="The most any pixel may change, in steps of 1/255 of the pixel range (8: the "
        "budget most papers use for ImageNet).",
    )
    steps = (
        count_slider(
            "PGD steps",
            1,
            100,
            10,
            key=f"{P}.steps",
            help="More steps find stronger "
            "perturbations within the same budget, at one forward and backward pass each.",
        )
        if method == "PGD"
        else 1
    )
    targeted = st.toggle(
        "Targeted: push towards a chosen class",
        key=f"{P}.targeted",
        help="Off: move away from the class the model predicts for the clean image. On: lower "
        "the loss of the chosen class instead.",
    )
    target = (
        st.selectbox(
            "Target class",
            range(len(classes)),
            # "3: 3" for the digits: the index only where the name is something else
            format_func=ui.class_option(classes),
            key=f"{P}.target",
        )
        if targeted
        else None
    )
shown = (
    set(table) - ({"steps"} if method != "PGD" else set()) - ({"target"} if not targeted else set())
)
links.save_settings(table, prefix=f"{P}.", keep=LINK_KEYS, shown=shown)

pixels = denormalize(chosen.tensor, meta["mean"], meta["std"])  # (1, C, H, W) in [0, 1]
with torch.inference_mode():
    predicted = int(loaded.model(chosen.tensor.to(loaded.device)).argmax(1)[0])
label = target if targeted else predicted
key = (loaded.name, loaded.device, chosen.key, method, eps, steps, targeted)
try:
    with st.spinner(f"{method}: {steps} forward and backward pass(es)…", show_time=True):
        result = attack_one(key, label, pixels, loaded)
except (ValueError, RuntimeError) as err:
    st.error(f"The attack could not run on this input: {err}")
    st.stop()

clean_p, adv_p = result.clean_probs[0], result.adversarial_probs[0]  # (classes,)
after = int(adv_p.argmax())
changed = np.abs(result.perturbation.numpy()) * 255  # (1, C, H, W) in grey levels
if targeted:
    verdict = (
        f"The model now says **{classes[after]}**, the target."
        if after == label
        else f"The model says **{classes[after]}**, not yet the target {classes[label]}: "
        + ("raise ε or the steps." if method == "PGD" else "raise ε or use PGD.")
    )
else:
    verdict = (
        f"The answer changed from **{classes[predicted]}** to **{classes[after]}**."
        if after != predicted
        else f"The model still says **{classes[predicted]}**: raise ε"
        + (" or the steps." if method == "PGD" else " or use PGD.")
    )
(st.success if (after == label) == targeted else st.info)(verdict)

tiles = np.stack(
    [
        pixels[0].numpy(),
        perturbation_tile(result.perturbation[0].numpy(), eps / 255),
        result.adversarial[0].numpy(),
    ]
)  # (3, C, H, W) in [0, 1]
st.plotly_chart(
    plot_captioned_images(
        tiles,
        [
            # class names on a line of their own: a 16-character line holds "aircraft carrier"
            ["clean", classes[predicted], confidence_percent(clean_p[predicted])],
            [f"change ×{255 / (2 * eps):.0f}", "mean |δ|", f"{changed.mean():.1f}/255"],
            ["adversarial", classes[after], confidence_percent(adv_p[after])],
        ],
        hover=[
            f"{chosen.label}<br>{classes[predicted]}: {float(clean_p[predicted]):.2%}",
            f"grey: unchanged; black and white: −{eps}/255 and +{eps}/255",
            f"within {eps}/255 of the clean image in every pixel<br>"
            f"{classes[after]}: {float(adv_p[after]):.2%}",
        ],
        cols=3,
        tile_px=200,
        title=f"{method}, ε = {eps}/255" + (f", {steps} steps" if method == "PGD" else ""),
    ),
    key=f"{P}.images",
)
st.caption(
    f"The middle image is the change amplified {255 / (2 * eps):.0f} times: grey where a pixel "
    f"kept its value, darker or lighter where it moved down or up (at most {eps}/255). "
    f"{int((changed > 0.5).sum()):,} of {changed.size:,} values moved. The loss of the "
    f"{'target' if targeted else 'clean prediction'} went from {result.losses[0]:.3g} to "
    f"{result.losses[-1]:.3g}."
)
b1, b2 = st.columns(2)
for col, probs, title in ((b1, clean_p, "Clean"), (b2, adv_p, "Adversarial")):
    top = probs.topk(min(5, len(probs)))
    col.plotly_chart(
        plot_top_predictions(
            [classes[int(i)] for i in top.indices],
            [float(v) for v in top.values],
            title=f"{title}: top-5 predictions",
        ),
        key=f"{P}.top_{title.lower()}",
    )
d1, d2 = st.columns(2)
d1.download_button(
    "Adversarial image (PNG)",
    image_grid_png(result.adversarial.numpy(), cols=1, pad=0),
    help="8 bits a value: rounding to whole grey levels may undo part of a small change; the "
    "NPY file keeps the exact values.",
    file_name=f"{loaded.stem}_{method}_eps{eps}.png",
    mime="image/png",
    key=f"{P}.download_png",
    on_click="ignore",  # no rerun: a second download is not cancelled by the first's
)
d2.download_button(
    "Exact pixels (NPY, C×H×W in [0, 1])",
    to_npy_bytes(result.adversarial[0].numpy()),
    file_name=f"{loaded.stem}_{method}_eps{eps}.npy",
    key=f"{P}.download_npy",
    on_click="ignore",
)

# ---- accuracy under attack ------------------------------------------------------------------
st.subheader("Accuracy under attack")
try:
    images, labels, _ = dataset_for(meta["dataset"], tuple(int(v) for v in meta["input_size"][1:]))
except ValueError as err:
    st.info(
        f"The curve needs the model's labelled test split. {missing_test_split(meta, err)}; "
        "the digit models have theirs."
    )
    st.stop()
st.caption(
    f"The first test images of {meta['dataset']}, each attacked (untargeted, its true class) "
    f"at ε = {', '.join(str(v) for v in CURVE_LEVELS)}/255 with FGSM and with PGD "
    f"({steps if method == 'PGD' else 10} steps), the model's own and any you compare it with."
)
n = count_slider("Test images", 16, min(len(images), 512), 128, key=f"{P}.n")
others = [
    name
    for name in zoo.checkpoint_names()
    if name != loaded.name and zoo.checkpoint_metadata(name)["dataset"] == meta["dataset"]
]
# in the link too: the curves themselves wait for the button
compare_table: links.Table = {
    "compare": (f"{P}.compare", [], links.multichoice_parser(others, least=0))
}
for warning in links.load_settings(
    compare_table, prefix=f"{P}.", from_link=links.first_visit(f"{P}.compare.")
):
    st.warning(warning, icon=":material/link_off:")
compare = (
    st.multiselect(
        "Compare with",
        others,
        key=f"{P}.compare",
        help=f"Other shipped models trained on {meta['dataset']}, attacked on the same test "
        "images (each at its own input size): which architecture holds out longest?",
    )
    if others
    else []
)
links.save_settings(compare_table, prefix=f"{P}.", keep=LINK_KEYS)
pgd_steps = steps if method == "PGD" else 10
curves = st.session_state.setdefault(f"{P}.curves", {})  # (model, device, n, steps) -> curves
wanted = [loaded.name, *compare]
missing = [name for name in wanted if (name, loaded.device, n, pgd_steps) not in curves]
button_slot = st.empty()  # emptied once the curves are in: the button's work is done
if missing and button_slot.button(
    "Attack the test images" + (f" ({len(missing)} models)" if len(missing) > 1 else ""),
    key=f"{P}.curve",
    icon=":material/play_arrow:",
):
    bar = st.progress(0.0, text="Attacking…")
    jobs = [(name, attack_name) for name in missing for attack_name in adversarial.ATTACKS]
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for j, (name, attack_name) in enumerate(jobs):
            if name == loaded.name:
                model, model_meta = loaded.model, meta
            else:
                model, model_meta, _ = ui.cached_model(name, loaded.device)
            size = tuple(int(v) for v in model_meta["input_size"][1:])
            test_images, test_labels, _ = dataset_for(model_meta["dataset"], size)

            def advance(done: int, total: int, j: int = j, label: str = f"{name}, {attack_name}"):
                bar.progress((j + done / total) / len(jobs), text=f"{label}: {done} of {total}")

            # no lock: the attack adds no hook to the shared model
            results.setdefault(name, {})[attack_name] = adversarial.accuracy_under_attack(
                model,
                denormalize(test_images[:n], model_meta["mean"], model_meta["std"]),
                test_labels[:n],
                [v / 255 for v in CURVE_LEVELS],
                mean=model_meta["mean"],
                std=model_meta["std"],
                method=attack_name,
                steps=pgd_steps,
                callback=advance,
            )
    except (ValueError, RuntimeError) as err:
        st.error(f"The attack could not run: {err}")
        st.stop()
    bar.empty()
    button_slot.empty()
    for name, by_attack in results.items():
        curves[(name, loaded.device, n, pgd_steps)] = by_attack
shown = {
    name: curves[(name, loaded.device, n, pgd_steps)]
    for name in wanted
    if (name, loaded.device, n, pgd_steps) in curves
}
if loaded.name in shown:
    st.plotly_chart(
        plot_attack_accuracy(CURVE_LEVELS, shown, images=n, chance=1 / len(classes)),
        key=f"{P}.curve_chart",
    )
    table_df = pd.DataFrame(
        {"eps_255": CURVE_LEVELS}
        | {
            f"{name}_{attack_name}": values
            for name, by_attack in shown.items()
            for attack_name, values in by_attack.items()
        }
    )
    st.download_button(
        "Download the curves (CSV: ε in grey levels, accuracy per model and attack)",
        table_df.to_csv(index=False),
        file_name=f"{loaded.stem}_accuracy_under_attack.csv",
        mime="text/csv",
        key=f"{P}.download_curve",
        on_click="ignore",
    )
