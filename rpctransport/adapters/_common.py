# -*- test-case-name: rpctransport.test.test_stream,rpctransport.test.test_datagram -*-
"""
What the stream and datagram controllers share: their state enums, the
misuse checks, and the reactor default.
"""

from __future__ import annotations

import enum
from typing import Any

from ..sansio.errors import ControllerInactive
from ..sansio.types import ACCEPT, InRule


class Life(enum.Enum):
    """
    A controller's life cycle.

    C{STARTING} -> C{OPEN} -> C{LOST} (the connection or socket is gone);
    any state -> C{INACTIVE} (L{inactivate}, for good).
    """

    STARTING = "starting"
    OPEN = "open"
    LOST = "lost"
    INACTIVE = "inactive"


class Side(enum.Enum):
    """
    The state of one direction (reader or writer).

    C{IDLE} <-> C{BUSY}; the writer goes C{IDLE} -> C{SHUT} on shutdown;
    either goes to C{ABORTED} on C{abort_rw()}, for good.
    """

    IDLE = "idle"
    BUSY = "busy"
    SHUT = "shut"
    ABORTED = "aborted"


def accept_all(size: int, peer: object) -> InRule:
    """
    The C{before_record} of a read that passed none: accept everything.
    """
    return ACCEPT


def resolve_reactor(reactor: Any) -> Any:
    """
    C{reactor}, or the global reactor when it is L{None} (imported only then,
    so that nothing installs a reactor at import time).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        return global_reactor
    return reactor


def check_usable(life: Life, side: Side, what: str, name: str) -> None:
    """
    Raise L{ControllerInactive} when C{what} (an operation of the C{name}
    side) is called on an inactive controller or an aborted side.
    """
    if life is Life.INACTIVE:
        raise ControllerInactive(f"{what}: the controller is inactive")
    if side is Side.ABORTED:
        raise ControllerInactive(f"{what}: the {name} was aborted with abort_rw()")
