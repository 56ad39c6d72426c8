"""The replay core's array layout: which slot of the state arrays holds what, and the codes
it reports (order states, responses, queue models, stop reasons)."""

from __future__ import annotations

import numpy as np

# --- S: int64 state slots -------------------------------------------------------------------
EX_I, LOC_I, EX_BB, EX_BA, LOC_BB, LOC_BA, NOW, LAST_DATA = range(8)
Q_BID, Q_ASK, LAST_CYCLE, MIN_GAP, N_RESP, N_TRADES, N_MIDS, LAST_MID2 = (
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
)
NEXT_ORDER, CROSSED, GAPS, TRACK_MID, QUEUE, RESP_LAT, EX_EVENTS, ACTIVE = range(16, 24)
FILLS_QUEUE, FILLS_CROSS = (
    24,
    25,
)  # fills by reaching the queue's front / by a print or book through us
N_STATE = 26

# --- F: float64 parameters ------------------------------------------------------------------
F_POWER = 0
N_PARAMS = 1

# --- ords: our orders, one row per slot ---------------------------------------------------------
O_STATE, O_SIDE, O_PRICE, O_RANK, O_QTY, O_HANDLE, O_ARRIVE, O_CANCEL = 0, 1, 2, 3, 4, 5, 6, 7
FREE, SENT, RESTING, FILLED_CANCEL_PENDING = 0, 1, 2, 3
N_SLOTS = 32

# --- R: responses to us, oldest first ---------------------------------------------------------
R_TS, R_KIND, R_HANDLE, R_PRICE, R_QTY = 0, 1, 2, 3, 4
ACK, REJECT, CANCELLED, CANCEL_REJECT, FILL = 1, 2, 3, 4, 5

# --- queue models and stop reasons ----------------------------------------------------------
RISK_AVERSE, PROB = 0, 1
STOP_TIME, STOP_REACT, STOP_FULL, STOP_END = 0, 1, 2, 3

NEVER = np.iinfo(np.int64).max
