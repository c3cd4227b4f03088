"""Figures for the Adversarial Examples page: accuracy against the attack's budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

__all__ = ["ATTACK_COLORS", "perturbation_tile", "plot_attack_accuracy"]

ATTACK_COLORS = {"FGSM": "#f58518", "PGD": "#e45756"}


def perturbation_tile(perturbation, eps: float):
    """Return a perturbation (C, H, W), values within [-eps, eps], as an image in [0, 1]: grey
    0.5 where nothing moved, 0 and 1 at -eps and +eps (amplified 1 / (2 eps) times)."""
    if eps <= 0:
        return perturbation * 0 + 0.5
    return 0.5 + perturbation / (2 * eps)


def plot_attack_accuracy(
    eps_levels: Sequence[float],
    accuracies: Mapping[str, Sequence[float]],
    *,
    images: int,
    chance: float | None = None,
    title: str = "Accuracy under attack",
) -> go.Figure:
    """Return the accuracy (share in [0, 1]) against the attack's budget, one line per attack.

    eps_levels: the budgets in grey levels of 255 (8 means no pixel moves by more than 8/255);
    accuracies: attack name -> accuracy at each level (a shorter list: an attack stopped early).
    images: how many were attacked; chance: the accuracy of guessing, drawn dashed.
    """
    fig = go.Figure()
    for name, values in accuracies.items():
        fig.add_trace(
            go.Scatter(
                x=list(eps_levels)[: len(values)],
                y=list(values),
                mode="lines+markers",
                name=name,
                line={"color": ATTACK_COLORS.get(name)},
                hovertemplate=f"{name}, ε = %{{x:g}}/255<br>accuracy %{{y:.1%}}"
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
        height=380,
        xaxis={
            "title": "ε: the most any pixel may change (grey levels of 255)",
            "rangemode": "tozero",
        },
        yaxis={"title": "accuracy", "tickformat": ".0%", "range": [0, 1.05]},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"},
        margin={"l": 10, "r": 10, "t": 80, "b": 40},
    )
    return fig
