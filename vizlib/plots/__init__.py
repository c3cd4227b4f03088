"""Figures: functions that take arrays and return a plotly ``go.Figure``; pages only place them."""

from .adversarial import *  # noqa: F403
from .adversarial import __all__ as _adversarial_all
from .attribution import *  # noqa: F403
from .attribution import __all__ as _attribution_all
from .calibration import *  # noqa: F403
from .calibration import __all__ as _calibration_all
from .conv import *  # noqa: F403
from .conv import __all__ as _conv_all
from .embedding import *  # noqa: F403
from .embedding import __all__ as _embedding_all
from .export import *  # noqa: F403
from .export import __all__ as _export_all
from .filters import *  # noqa: F403
from .filters import __all__ as _filters_all
from .layerstats import *  # noqa: F403
from .layerstats import __all__ as _layerstats_all
from .models import *  # noqa: F403
from .models import __all__ as _models_all
from .similarity import *  # noqa: F403
from .similarity import __all__ as _similarity_all
from .training import *  # noqa: F403
from .training import __all__ as _training_all
from .vit import *  # noqa: F403
from .vit import __all__ as _vit_all

__all__ = [
    *_adversarial_all,
    *_attribution_all,
    *_calibration_all,
    *_conv_all,
    *_embedding_all,
    *_export_all,
    *_filters_all,
    *_layerstats_all,
    *_models_all,
    *_similarity_all,
    *_training_all,
    *_vit_all,
]
