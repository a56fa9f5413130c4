"""ipywidgets the notebooks share (ipywidgets is imported lazily, inside each function).

Under papermill and nbval, widget cells run but their live output is not captured; such cells are
tagged ``nbval-ignore-output`` in the notebooks.
"""

from __future__ import annotations
