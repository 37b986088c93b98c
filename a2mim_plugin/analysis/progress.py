"""Progress lines with an ETA for long interaction analyses."""
import time
from datetime import timedelta
from typing import Callable, Optional

from mmengine.logging import print_log


class AnalysisProgress:
    """Counts forward passes and logs progress (images, orders, throughput, ETA).

    Args:
        total_forwards: forwards the run still has to do (cached images excluded).
        interval: seconds between two lines within an image; every finished image logs.
        clock: time source (seconds).
    """

    def __init__(self, total_forwards: int, interval: float = 10.,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total_forwards
        self.done = 0
        self.interval = interval
        self.clock = clock
        self.start = clock()
        self._last = self.start

    @property
    def images_per_second(self) -> float:
        """Masked images through the model per second so far."""
        elapsed = self.clock() - self.start
        return self.done / elapsed if elapsed > 0 else 0.

    def eta(self) -> Optional[timedelta]:
        """Time left at the throughput so far (None before the first forward)."""
        rate = self.images_per_second
        if rate <= 0:
            return None
        return timedelta(seconds=round((self.total - self.done) / rate))

    def update(self, forwards: int, where: str, force: bool = False) -> None:
        """Add ``forwards`` and log ``where`` (e.g. 'image 3/20, order 5/13') when due."""
        self.done += forwards
        now = self.clock()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        eta = self.eta()
        print_log(f'{where}: {self.done}/{self.total} forwards, '
                  f'{self.images_per_second:.1f} images/s, elapsed '
                  f'{timedelta(seconds=round(now - self.start))}, ETA '
                  f'{eta if eta is not None else "?"}', logger='current')
