"""Figures for the Adversarial Examples page: accuracy against the attack's budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

__all__ = ["ATTACK_COLORS", "perturbation_tile", "plot_attack_accuracy"]

ATTACK_COLORS = {"FGSM": "#f58518", "PGD": "#e45756"}
MODEL_COLORS = ("#4c78a8", "#e45756", "#54a24b", "#b279a2", "#f58518", "#72b7b2")


def perturbation_tile(perturbation, eps: float):
    """Return a perturbation (C, H, W), values within [-eps, eps], as an image in [0, 1]: grey
    0.5 where nothing moved, 0 and 1 at -eps and +eps (amplified 1 / (2 eps) times)."""
    if eps <= 0:
        return perturbation * 0 + 0.5
    return 0.5 + perturbation / (2 * eps)


def plot_attack_accuracy(
    eps_levels: Sequence[float],
    accuracies: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    images: int,
    chance: float | None = None,
    title: str = "Accuracy under attack",
) -> go.Figure:
    """Return the accuracy (share in [0, 1]) against the attack's budget, one line per model and
    attack.

    eps_levels: the budgets in grey levels of 255 (8 means no pixel moves by more than 8/255);
    accuracies: model name -> attack name -> accuracy at each level (a shorter list: an attack
    stopped early). One model: a colour per attack; several: a colour per model, PGD solid and
    FGSM dotted. images: how many were attacked; chance: the accuracy of guessing, dashed.
    """
    fig = go.Figure()
    several = len(accuracies) > 1
    for m, (model, by_attack) in enumerate(accuracies.items()):
        for name, values in by_attack.items():
            label = f"{model}, {name}" if several else name
            color = MODEL_COLORS[m % len(MODEL_COLORS)] if several else ATTACK_COLORS.get(name)
            fig.add_trace(
                go.Scatter(
                    x=list(eps_levels)[: len(values)],
                    y=list(values),
                    mode="lines+markers",
                    name=label,
                    line={"color": color, "dash": "dot" if several and name == "FGSM" else None},
                    hovertemplate=f"{label}, ε = %{{x:g}}/255<br>accuracy %{{y:.1%}}"
                    f" of {images:,} images<extra></extra>",
                )
            )
    if chance is not None:
        fig.add_hline(
            y=chance,
            line_dash="dash",
            line_color="gray",
            annotation_text=f"chance ({chance:.0%})",
            annotation_position="top right",
        )
    fig.update_layout(
        title={"text": title, "font": {"size": 15}},
        height=400 if several else 380,
        xaxis={
            "title": "ε: the most any pixel may change (grey levels of 255)",
            "rangemode": "tozero",
        },
        yaxis={"title": "accuracy", "tickformat": ".0%", "range": [0, 1.05]},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"},
        margin={"l": 10, "r": 10, "t": 100 if several else 80, "b": 40},
    )
    return fig
