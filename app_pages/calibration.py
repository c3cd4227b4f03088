"""Predictions & Calibration: where a model is wrong, and whether its confidence says so: the
reliability diagram and expected calibration error, temperature scaling fitted on held-out
images, accuracy when only the surest answers are kept, the confusion matrix, per-class scores
and the most confident mistakes, on clean images or rotated, blurred and noisy ones."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import streamlit as st
import torch

import ui
from ui import count_slider, links
from ui.inside_cnns import (
    LoadedModel,
    image_set,
    image_set_picker,
    image_set_settings,
    model_picker,
    unreadable_warning,
)
from vizlib import calibration, train, zoo
from vizlib.data import denormalize
from vizlib.plots import (
    commonest_mistakes,
    plot_confusion_matrix,
    plot_misclassified,
    plot_reliability,
    plot_selective_accuracy,
)

P = "calibration"
SMALL_INPUT = 64 * 64  # pixels: the digit models answer at once, larger inputs on request
MAX_RESULTS = 4  # results kept in a session
MAX_MATRIX_CLASSES = 30  # more classes than this: the per-class table only
MAX_MISTAKES = 12
FOLDS = 2  # cross-fitting: each half's temperature is fitted on the other half
LINK_KEYS = {"model", "images", "n", "bins", "scaling", "rotation", "blur", "noise", "compare"}
AS_IS, SCALED = "as the model answers", "temperature-scaled"
SHARES = ["precision", "recall", "mean_confidence"]  # per-class columns shown in percent


def settings(available: int, max_blur: float) -> links.Table:
    """The page's shareable settings: query key -> (widget key, default, allowed)."""
    return {
        "n": (f"{P}.n", available, (1, max(available, 1))),
        "bins": (f"{P}.bins", 15, (5, 30)),
        "scaling": (f"{P}.scaling", True, (False, True)),
        "rotation": (f"{P}.rotation", 0, (-180, 180)),
        "blur": (f"{P}.blur", 0.0, (0.0, max_blur, 0.25)),
        "noise": (f"{P}.noise", 0.0, (0.0, 1.0, 0.05)),
    }


def labelled_set(
    source: str, meta: dict
) -> tuple[torch.Tensor, np.ndarray, list[str], list[int], list[str]]:
    """Return (images (N, C, H, W), labels (N,) as the model's class indices, the set's class
    names, each image's index in its source, the set's classes the model does not have): an
    image folder's classes are matched to the model's by name, and its images of other classes
    left out (and its unreadable files, which ``unreadable_warning`` names)."""
    images, labels, classes, ids = image_set(source, meta)
    labels = labels.numpy()
    if source == meta["dataset"]:
        return images, labels, classes, ids, []
    to_model = calibration.match_classes(classes, meta["class_names"])  # (classes,) or -1
    mapped = to_model[labels]  # (N,)
    keep = np.flatnonzero(mapped >= 0)
    unknown = [c for c, m in zip(classes, to_model, strict=True) if m < 0]
    return images[keep], mapped[keep], classes, [ids[i] for i in keep], unknown


def points(difference: float, decimals: int) -> str:
    """Return the difference of two shares in percentage points, signed: "+42.9 pts" for 68.0%
    against 25.1% (written "+42.9%", it read as a relative change)."""
    return f"{100 * difference:+.{decimals}f} pts"


def set_label(source: str, n: int) -> str:
    """Name the images scored: "7 images of my_folder", "the first image of the digits test
    split" (not "the first 1 image")."""
    if source.startswith("imagefolder:"):
        images = "one image" if n == 1 else f"{n:,} images"
        return f"{images} of {ui.dataset_label(source)}"
    first = "the first image" if n == 1 else f"the first {n:,} images"
    return f"{first} of the {source} test split"


def evaluate(
    loaded: LoadedModel, images: torch.Tensor, key: tuple, *, small: bool
) -> torch.Tensor | None:
    """Return the logits (N, K) of ``images``, kept in the session under ``key``; None while a
    large model waits for its button."""
    results = st.session_state.setdefault(f"{P}.results", {})
    if key in results:
        return results[key]
    button_slot = st.empty()
    if not small and not button_slot.button(
        f"Run {loaded.stem} on {len(images):,} images",
        key=f"{P}.run",
        icon=":material/play_arrow:",
        type="primary",
    ):
        st.info(
            f"One forward pass over {len(images):,} images on {loaded.device}: on a CPU, "
            "a 224-pixel model takes a few seconds per 16 images."
        )
        return None
    button_slot.empty()
    bar = st.progress(0.0, text="Running the model…")
    started = time.perf_counter()

    def advance(done: int, total: int) -> None:
        left = ui.time_left(time.perf_counter() - started, done, total)
        bar.progress(done / total, text=f"Running the model: {done:,} of {total:,} images{left}")

    logits = calibration.class_logits(
        loaded.model, images, batch_size=256 if small else 16, progress=advance
    )
    bar.empty()
    if len(results) >= MAX_RESULTS:
        results.pop(next(iter(results)))
    results[key] = logits
    return logits


def restricted_confusion(
    labels: np.ndarray, predicted: np.ndarray, classes: list[int]
) -> tuple[np.ndarray, bool]:
    """Return (counts (K, K + 1), whether any answer is outside ``classes``): rows the images'
    true classes in ``classes`` order, columns the same classes, then 'another class'."""
    position = {c: i for i, c in enumerate(classes)}
    other = len(classes)
    rows = np.array([position[c] for c in labels], dtype=np.int64)
    cols = np.array([position.get(c, other) for c in predicted], dtype=np.int64)
    # 'another class' as one more class: no true image is of it, so its row is dropped
    counts = train.confusion_matrix(rows, cols, num_classes=other + 1)[:other]
    return counts, bool(counts[:, other].any())


st.title("Predictions & Calibration")
st.caption(
    "Where is the model wrong, and does its confidence say so? A calibrated model's answers "
    "given with 80% confidence are right 80% of the time (Guo et al., 2017). See how far the "
    "confidence is off, how one number, a temperature dividing the logits, mends it, how "
    "accurate the model is when it answers only when sure, and how all this changes when the "
    "images are rotated, blurred or noisy."
)

loaded = model_picker(P)
if loaded is None:
    st.stop()
meta = loaded.meta
link_from = links.first_visit(f"{P}.")
images_setting = image_set_settings(P, meta)
source = image_set_picker(P, meta, purpose="Scoring the answers needs", from_link=link_from)
if source is None:
    links.save_settings(images_setting, prefix=f"{P}.", keep=LINK_KEYS)
    st.stop()
try:
    images, labels, set_classes, ids, unknown = labelled_set(source, meta)
except ValueError as err:
    st.error(str(err))
    st.stop()
unreadable_warning(source, meta)
class_names = [str(c) for c in meta["class_names"]]
if unknown:
    known = len(set_classes) - len(unknown)
    message = (
        f"{len(unknown)} of the folder's {len(set_classes)} classes "
        + ("is not a class" if len(unknown) == 1 else "are not classes")
        + f" of {meta['name']} ({', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''})"
        + (": nothing to score." if not known or not len(images) else ": its images are left out."
           if len(unknown) == 1 else ": their images are left out.")
        + " A folder's classes are matched to the model's by name, ignoring case and the "
        "difference between spaces, underscores and hyphens"
        + (f" (e.g. '{class_names[0]}', '{class_names[-1]}')." if class_names else ".")
    )  # fmt: skip
    if not known or not len(images):
        st.error(message)
        st.stop()
    st.caption(message)

small = int(np.prod(meta["input_size"][1:])) <= SMALL_INPUT
available = len(images)
max_blur = float(np.floor(min(meta["input_size"][1:]) / 8 * 4) / 4)  # 3.5 px at 28, 28 at 224
if st.session_state.get(f"{P}.n_for", source) != source:
    # a count chosen for another image set goes back to this one's default (all of it): 40
    # kept from a folder read "the first 40 images of the digits test split"
    st.session_state.pop(f"{P}.n", None)
    st.session_state.get(f"{P}.saved", {}).pop(f"{P}.n", None)
st.session_state[f"{P}.n_for"] = source
rest = settings(available, max_blur)
for warning in links.load_settings(rest, prefix=f"{P}.", from_link=link_from):
    st.warning(warning, icon=":material/link_off:")
table = images_setting | rest

c1, c2 = st.columns(2)
with c1:
    n = count_slider(
        "Number of images", 1, available, available, key=f"{P}.n",
        help="How many images of the set (the first ones). The calibration error of a few "
        "dozen images is mostly noise.",
    )  # fmt: skip
with c2:
    bins = count_slider(
        "Confidence bins", 5, 30, 15, key=f"{P}.bins",
        help="The reliability diagram and the expected calibration error sort the answers into "
        "this many equal-width bins of confidence (Guo et al. use 15). Fewer bins, less noise "
        "per bin, more gaps averaged away.",
    )  # fmt: skip
scaling = st.toggle(
    "Temperature scaling",
    key=f"{P}.scaling",
    help="Divide the logits by one temperature T fitted by maximum likelihood; each half of "
    "the images gets the T fitted on the other half, so the improvement is not flattered. "
    "No answer changes.",
)
with st.expander("Shift the images", icon=":material/blur_on:"):
    s1, s2, s3 = st.columns(3)
    rotation = s1.slider(
        "Rotation (degrees)", -180, 180, key=f"{P}.rotation",
        help="Rotate every image about its centre (anticlockwise for positive angles), the "
        "corners filled with black.",
    )  # fmt: skip
    blur = s2.slider(
        "Blur (pixels)", 0.0, max_blur, step=0.25, key=f"{P}.blur",
        help="Standard deviation of a Gaussian blur, in pixels of the model's input.",
    )  # fmt: skip
    noise = s3.slider(
        "Noise", 0.0, 1.0, step=0.05, key=f"{P}.noise",
        help="Standard deviation of Gaussian noise added to the pixels (0 black to 1 white), "
        "the same draw every time; then clipped to [0, 1].",
    )  # fmt: skip
    st.caption(
        "Accuracy measured on the test split says little about images unlike it. Ovadia et "
        "al. (2019) found accuracy falling faster than confidence as such shifts grow: the "
        "answers become overconfident."
    )
links.save_settings(table, prefix=f"{P}.", keep=LINK_KEYS)

shifted = bool(rotation or blur or noise)
try:
    images = calibration.corrupt_images(
        images[:n], mean=meta["mean"], std=meta["std"], rotation=rotation, blur=blur,
        noise=noise,
    )  # fmt: skip
    labels, ids = labels[:n], ids[:n]
    key = (loaded.name, loaded.device, source, n, rotation, blur, noise)
    logits = evaluate(loaded, images, key, small=small)
except torch.cuda.OutOfMemoryError:
    st.error(f"The GPU ran out of memory for {n} images; choose fewer, or the CPU in the sidebar.")
    st.stop()
except (ValueError, RuntimeError) as err:
    st.error(f"Could not run {meta['name']} on these images: {err}")
    st.stop()
if logits is None:
    st.stop()
if not torch.isfinite(logits).all():
    bad = int((~torch.isfinite(logits)).any(dim=1).sum())
    st.error(
        f"The model's output holds NaN or infinite values for {bad} of the {n} images: there "
        "is no confidence to judge. Check the weights (an upload trained with too high a "
        "learning rate?) on the Activations & Gradients page.",
        icon=":material/error:",
    )
    st.stop()

probabilities = torch.softmax(logits, dim=1).numpy()  # (N, K)
predicted = probabilities.argmax(axis=1)
confidence = probabilities.max(axis=1)
correct = predicted == labels
accuracy = float(correct.mean())
before = calibration.reliability(confidence, correct, n_bins=bins)
curves = {AS_IS: before}
headline = calibration.summarize(logits, labels, n_bins=bins)
temperature = headline["temperature"]  # NaN below 4 images
scaled = probabilities
at_bound = temperature in calibration.TEMPERATURE_BOUNDS
# a temperature at its bound scales every answer to certainty (or to a uniform guess): its
# "improvement" means nothing, so no scaled curve is drawn
if scaling and n >= 2 * FOLDS and not at_bound:
    per_image, per_fold = calibration.cross_fitted_temperatures(logits, labels, folds=FOLDS)
    scaled = torch.softmax(logits / torch.from_numpy(per_image).float()[:, None], dim=1).numpy()
    curves[SCALED] = calibration.reliability(scaled.max(axis=1), correct, n_bins=bins)

st.markdown(
    f"**{meta['name']}** on {set_label(source, n)}"
    + (
        f", rotated {rotation}°" * bool(rotation)
        + f", blurred ({blur:g} px)" * bool(blur)
        + f", with noise of σ {noise:g}" * bool(noise)
        if shifted
        else ""
    )
    + "."
)
m = [*st.columns(3), *st.columns(3)]  # two rows: five labels in one row were cut
m[0].metric("Accuracy", f"{accuracy:.1%}", help=f"{int(correct.sum()):,} of {n:,} right")
k5 = min(5, logits.shape[1])
m[1].metric(
    f"Top-{k5} accuracy",
    f"{headline['top5']:.1%}",
    help=f"The true class among the model's {k5} most probable.",
)
nll = headline["nll"]
m[2].metric(
    "Mean confidence",
    f"{confidence.mean():.1%}",
    delta=(
        "= accuracy"
        if abs(confidence.mean() - accuracy) < 5e-4
        else f"{points(confidence.mean() - accuracy, 1)} vs accuracy"
    ),
    delta_color="off",
    help="The probability of the answer, averaged over the images. Above the accuracy: "
    "overconfident on the whole; below: underconfident. The difference is in percentage "
    "points (pts).",
)
after_ece = curves[SCALED].ece if SCALED in curves else None
m[3].metric(
    "Calibration error (ECE)",
    f"{before.ece:.2%}",
    delta=None if after_ece is None else f"{points(after_ece - before.ece, 2)} scaled",
    delta_color="inverse",
    help=f"Expected calibration error over {bins} bins: the mean gap between confidence and "
    "accuracy, each bin weighted by its images. 0 is perfectly calibrated."
    + (
        ""
        if after_ece is None
        else f" Temperature-scaled (held out): {after_ece:.2%}, a change in percentage points "
        "(pts)."
    ),
)
m[4].metric(
    "Fitted temperature",
    f"T = {temperature:.3g}" if n >= 2 * FOLDS else "–",
    delta="at the fit's bound" if at_bound and n >= 2 * FOLDS else None,
    delta_color="off",
    delta_arrow="off",
    help="The T that makes softmax(logits / T) most likely on these images: above 1 the "
    "model is overconfident, below 1 underconfident. Fitted on 4 images or more.",
)
m[5].metric(
    "Log-likelihood loss",
    f"{nll:.3f}",
    help="Mean negative log-likelihood of the true class, in nats (the cross-entropy "
    f"loss). ln {logits.shape[1]} = {np.log(logits.shape[1]):.2f} is a uniform guess.",
)

if correct.all() and not shifted and n > 1:
    st.info(
        f"Every one of the {n:,} answers is right: little to learn about the model's "
        "confidence here. Open **Shift the images** above and add some noise (0.3 is a good "
        "start) or a rotation: does the confidence fall with the accuracy?",
        icon=":material/lightbulb:",
    )
if n < 2 * FOLDS:
    note = "Temperature scaling needs 4 images or more."
elif after_ece is None and not at_bound:
    note = (
        f"Temperature scaling is off; the temperature fitted on these images is T = "
        f"{temperature:.3g}."
    )
elif at_bound and temperature < 1:
    note = (
        "Every answer here is right, so the likelihood keeps rising as T shrinks (surer is "
        f"always better) and the fit stops at its bound T = {temperature:g}: scaled, every "
        "answer is certain. That says nothing about the images the model would get wrong; "
        "shift the images to see some."
    )
elif at_bound:
    note = (
        "The likelihood keeps rising as T grows, so the fit stops at its bound T = "
        f"{temperature:g}: a uniform guess is as likely as these answers, as when the logits "
        "hardly depend on the image (untrained weights?)."
    )
else:
    direction = "softens" if temperature > 1 else "sharpens"
    state = "overconfident" if temperature > 1 else "underconfident"
    note = (
        f"The temperature fitted on all {n:,} images is T = {temperature:.3g}: the model is "
        f"{state}, and dividing its logits by T {direction} its answers. Fitted on one half "
        f"and scored on the other (T = {per_fold[0]:.3g} and {per_fold[1]:.3g}), the "
        f"calibration error goes from {before.ece:.2%} to {after_ece:.2%} and the "
        f"log-likelihood loss from {nll:.3f} to "
        f"{calibration.negative_log_likelihood(logits, labels, temperature=per_image):.3f}; "
        "no answer changes."
        + (
            " Here scaling does not help: one temperature moves every confidence the same "
            "way, and cannot mend a model that is overconfident at some confidences and "
            "underconfident at others."
            if after_ece > before.ece
            else ""
        )
    )
st.plotly_chart(plot_reliability(curves, accuracy=accuracy), key=f"{P}.reliability")
st.caption(
    "Confidence is the probability the model gives its answer. "
    f"Left: each bin's accuracy at its mean confidence (the larger the dot, the more images); "
    f"on the dashed diagonal the confidence is exactly right. Right: how many answers fall in "
    f"each bin. {note}"
)

st.subheader("Answering only when sure")
wrong = int((~correct).sum())
if wrong:
    cover, kept_accuracy, threshold = calibration.coverage_curve(confidence, correct)
    st.plotly_chart(
        plot_selective_accuracy(cover, kept_accuracy, threshold, overall=accuracy),
        key=f"{P}.coverage",
    )
    # the most confident answers kept before the first mistake: how far the confidence can be
    # trusted to flag the risky answers
    first_wrong = int(np.argmax(~correct[np.argsort(-confidence, kind="stable")]))
    surest = f"{confidence[~correct].max():.1%}"
    st.caption(
        "The model answers only its most confident images and abstains on the rest, the least "
        "sure first. "
        + (
            f"Even its surest answer is wrong (confidence {surest})."
            if first_wrong == 0
            else f"Its most confident answer is right; the next, a mistake, has confidence "
            f"{surest}."
            if first_wrong == 1
            else f"Its {first_wrong:,} most confident answers ({first_wrong / n:.1%}) are all "
            f"right; its surest mistake has confidence {surest}."
        )
        + " Hover for the threshold of each share."
    )
else:
    st.caption(
        "Every answer is right, so whatever its threshold the answers kept are all right. "
        "Shift the images above to make the model err, and see whether its confidence flags "
        "the mistakes."
    )

st.subheader("Which classes it confuses")
present = sorted(set(labels.tolist()))
if len(present) <= MAX_MATRIX_CLASSES:
    counts, outside = restricted_confusion(labels, predicted, present)
    if not outside:
        counts = counts[:, :-1]
    names = [class_names[c] for c in present]
    st.plotly_chart(
        plot_confusion_matrix(
            counts, class_names=names,
            extra_columns=("another class",) if counts.shape[1] > len(present) else (),
        ),
        key=f"{P}.confusion",
    )  # fmt: skip
    st.caption(
        "Rows: the true class; columns: the model's answer"
        + (
            f", the last column any of the model's other {len(class_names) - len(present):,} "
            f"classes ({int(counts[:, -1].sum()):,} of the {n:,} answers)"
            if outside
            else ""
        )
        + ". Blue: right answers; orange: mistakes; on the right, each class's accuracy."
        + (f" {tied}" if (tied := commonest_mistakes(counts, names, noun="confusion")) else "")
    )
else:
    st.caption(
        f"The images hold {len(present)} classes: too many for a readable matrix, so only the "
        "table below."
    )
scores = calibration.class_scores(labels, predicted, num_classes=len(class_names))
rows = [c for c in range(len(class_names)) if scores["support"][c] or scores["predicted"][c]]
per_class = pd.DataFrame(
    {
        "class": [class_names[c] for c in rows],
        "images": scores["support"][rows],
        "answered": scores["predicted"][rows],
        "precision": scores["precision"][rows],
        "recall": scores["recall"][rows],
        "f1": scores["f1"][rows],
        "mean_confidence": [
            float(confidence[predicted == c].mean()) if scores["predicted"][c] else np.nan
            for c in rows
        ],
    }
)
st.dataframe(
    # in percent to one decimal: Streamlit's "percent" format wrote 70% beside 68.18%
    per_class.assign(**{c: per_class[c] * 100 for c in SHARES}),
    hide_index=True,
    key=f"{P}.classes",
    column_config={
        "class": st.column_config.TextColumn("Class"),
        "images": st.column_config.NumberColumn("Images", help="Images of the class"),
        "answered": st.column_config.NumberColumn("Answered", help="Answers of the class"),
        "precision": st.column_config.NumberColumn(
            "Precision", format="%.1f%%", help="Of the answers of this class, the share right"
        ),
        "recall": st.column_config.NumberColumn(
            "Recall", format="%.1f%%", help="Of the images of this class, the share found"
        ),
        "f1": st.column_config.NumberColumn(
            "F1", format="%.3f", help="Harmonic mean of precision and recall"
        ),
        "mean_confidence": st.column_config.NumberColumn(
            "Mean confidence", format="%.1f%%", help="Of the answers of this class"
        ),
    },
)
if per_class[SHARES].isna().any(axis=None):
    st.caption(
        "A cell that reads None is undefined: the precision of a class never answered, the "
        "recall of one without images, the mean confidence of answers never given."
    )

if wrong:
    st.subheader(f"The most confident mistakes ({wrong:,} in all)")
    order = np.flatnonzero(~correct)[np.argsort(-confidence[~correct], kind="stable")]
    shown = order[:MAX_MISTAKES]
    tiles = denormalize(images[shown], meta["mean"], meta["std"]).numpy()  # (M, C, H, W)
    st.plotly_chart(
        plot_misclassified(
            tiles, labels[shown], probabilities[shown], ids=[ids[i] for i in shown],
            class_names=class_names, cols=6,
            id_prefix="test image" if source == meta["dataset"] else "image",
        ),
        key=f"{P}.mistakes",
    )  # fmt: skip
    st.caption(
        f"{'All' if len(shown) == wrong else len(shown)} of the {wrong:,} mistakes, the surest "
        "first: the true class, the answer and (in brackets) its probability"
        + (", on the images as shifted above" if shifted else "")
        + "; hover for the probability of the true class."
    )
else:
    st.success("The one answer is right." if n == 1 else f"All {n:,} answers are right.")

frame = pd.DataFrame(
    {
        "index": ids,
        "true": [class_names[c] for c in labels],
        "predicted": [class_names[c] for c in predicted],
        "correct": correct,
        "confidence": confidence,
        "probability_of_true": probabilities[np.arange(n), labels],
    }
)
if SCALED in curves:
    frame["scaled_confidence"] = scaled.max(axis=1)
d1, d2 = st.columns(2)
d1.download_button(
    "Download each image's answer (CSV)",
    frame.to_csv(index=False, float_format="%.6f").encode(),
    file_name=f"{loaded.stem}_predictions.csv",
    mime="text/csv",
    key=f"{P}.download",
    on_click="ignore",
)
d2.download_button(
    "Download the per-class scores (CSV)",
    per_class.to_csv(index=False, float_format="%.6f").encode(),
    file_name=f"{loaded.stem}_class_scores.csv",
    mime="text/csv",
    key=f"{P}.download_classes",
    on_click="ignore",
)
others = [
    name
    for name in zoo.checkpoint_names()
    if name != loaded.name and zoo.checkpoint_metadata(name)["dataset"] == meta["dataset"]
]
if others:
    st.subheader("Beside the other shipped models")
    compare_table: links.Table = {
        "compare": (f"{P}.compare", [], links.multichoice_parser(others, least=0))
    }
    for warning in links.load_settings(compare_table, prefix=f"{P}.", from_link=link_from):
        st.warning(warning, icon=":material/link_off:")
    compare = st.multiselect(
        "Compare with",
        others,
        key=f"{P}.compare",
        help=f"Other shipped models trained on {meta['dataset']}, scored on the same images "
        "(each at its own input size) with the same shift: which is surest when wrong?",
    )
    links.save_settings(compare_table, prefix=f"{P}.", keep=LINK_KEYS)
    rows = [{"model": loaded.stem, **headline}]
    for name in compare:
        shared, meta_b, lock_b = ui.cached_model(name, loaded.device)
        try:
            images_b, labels_b, *_ = labelled_set(source, meta_b)
            images_b = calibration.corrupt_images(
                images_b[:n], mean=meta_b["mean"], std=meta_b["std"], rotation=rotation,
                blur=blur, noise=noise,
            )  # fmt: skip
            other = LoadedModel(name, shared, meta_b, lock_b, loaded.device)
            key_b = (name, loaded.device, source, n, rotation, blur, noise)
            logits_b = evaluate(other, images_b, key_b, small=True)
            rows.append(
                {"model": name, **calibration.summarize(logits_b, labels_b[:n], n_bins=bins)}
            )
        except (ValueError, RuntimeError) as err:
            st.error(f"Could not score {name}: {err}")
    if compare:
        frame_models = pd.DataFrame(rows)
        percent = ["accuracy", "top5", "mean_confidence", "ece"]
        st.dataframe(
            frame_models.assign(**{c: frame_models[c] * 100 for c in percent}),
            hide_index=True,
            key=f"{P}.models",
            column_config={
                "model": st.column_config.TextColumn("Model"),
                "accuracy": st.column_config.NumberColumn("Accuracy", format="%.1f%%"),
                "top5": st.column_config.NumberColumn(f"Top-{k5}", format="%.1f%%"),
                "mean_confidence": st.column_config.NumberColumn(
                    "Mean confidence", format="%.1f%%"
                ),
                "ece": st.column_config.NumberColumn("ECE", format="%.2f%%"),
                "temperature": st.column_config.NumberColumn(
                    "T", format="%.3g", help="The temperature fitted on all the images"
                ),
                "nll": st.column_config.NumberColumn("Log-likelihood loss", format="%.3f"),
            },
        )
        gaps = frame_models["mean_confidence"] - frame_models["accuracy"]
        surest = frame_models.loc[gaps.idxmax()]
        st.caption(
            f"The same {n:,} images for each model"
            + (", shifted alike" if shifted else "")
            + (
                f". Most overconfident: {surest['model']} (mean confidence "
                f"{surest['mean_confidence']:.1%} for {surest['accuracy']:.1%} right)."
                if gaps.max() > 0.005
                else ". None is overconfident on the whole: each one's mean confidence is at "
                "or below its accuracy."
            )
        )
        st.download_button(
            "Download the comparison (CSV)",
            frame_models.to_csv(index=False, float_format="%.6f").encode(),
            file_name=f"{loaded.stem}_calibration_comparison.csv",
            mime="text/csv",
            key=f"{P}.download_models",
            on_click="ignore",
        )

with st.expander("How these are computed", icon=":material/help:"):
    st.markdown(
        "- **Confidence**: the softmax probability of the answer (the most probable class).\n"
        f"- **Expected calibration error** (Guo et al., 2017): the answers are sorted into "
        f"{bins} equal-width bins of confidence; in each, |accuracy − mean confidence|, "
        "weighted by the bin's share of the answers, summed.\n"
        "- **Temperature scaling**: every logit divided by one T > 0 fitted by maximum "
        "likelihood (the loss is convex in 1/T: a bisection finds its minimum exactly). The "
        "order of the logits, hence every answer and the accuracy, stays the same. Fitted on "
        "the images it is scored on, it would flatter itself: each half's images get the T "
        "fitted on the other half.\n"
        "- **Answering only when sure**: the answers sorted by confidence, the accuracy of the "
        "k surest for every k. Temperature scaling does not change this order.\n"
        "- **Shifts** act on the pixels (0 to 1) before the model's normalisation: rotation "
        "(bilinear), then blur, then noise (seeded), clipped to [0, 1]."
    )
