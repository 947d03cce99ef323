"""cupyx.scipy.ndimage in the stand-in: SciPy's filters on the wrapped arrays, CuPy's keywords."""
from scipy import ndimage as _nd

from cupy import _api, _make_function

for _name, (_sample, _kw) in _api.NDIMAGE.items():
    globals()[_name] = _make_function(_name, set(_kw), getattr(_nd, _name))
