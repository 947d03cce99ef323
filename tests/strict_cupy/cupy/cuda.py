"""cupy.cuda in the stand-in: one pretend device, streams and events that do nothing."""
import time


class runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def runtimeGetVersion():
        return 0

    @staticmethod
    def getDeviceProperties(device):
        return {"name": b"strict CuPy stand-in (CPU)", "totalGlobalMem": 0}


class Device:
    def __init__(self, device=None):
        self.id = device or 0

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self._t = None

    def record(self, stream=None):
        self._t = time.perf_counter()

    def synchronize(self):
        pass


def get_elapsed_time(start_event, end_event):
    return (end_event._t - start_event._t) * 1000.0


class Stream:
    def __init__(self, null=False, non_blocking=False, ptds=False):
        pass

    def synchronize(self):
        pass


Stream.null = Stream(null=True)


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


def _compiler_module():
    """cupy.cuda.compiler with CompileException (raised by the stand-in's RawModule)."""
    import sys
    import types
    from ._raw import CompileException
    module = types.ModuleType(__name__ + ".compiler", "cupy.cuda.compiler in the stand-in")
    module.CompileException = CompileException
    sys.modules[module.__name__] = module
    return module


compiler = _compiler_module()
