"""cupyx in the stand-in: only cupyx.scipy.ndimage."""
