"""schemathesis hooks for the contract test (tests/contract/main.rs loads this file through SCHEMATHESIS_HOOKS).

They state the request rules of specs/03 that JSON Schema cannot, so that a request the fuzzer calls valid is one a
correct client could send, and let through exactly two answers the contract documents that schemathesis cannot tell
from a fault (see `filter_failure`). Nothing else about responses or checks is touched.
"""

import hashlib
import json
import re
from datetime import datetime

import schemathesis

IDEMPOTENCY_KEY = "Idempotency-Key"
# specs/03 §1: 1..=255 visible ASCII characters.
VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")


@schemathesis.hook
def before_call(context, case, **kwargs):
    """An Idempotency-Key names one request (specs/03 §1): the same key with another body is refused with 422
    `idempotency_key_reused`, and that refusal is the server remembering an earlier request, not a contract failure.
    The fuzzer draws keys from a small space ("0" again and again), so a valid key is replaced by a digest of the key
    and the body: a repeated (key, body) pair still repeats its key, and is answered from the stored response, while
    two different bodies never share one. Only schema-valid requests are touched: a negative one (an invalid key, a
    missing Authorization header, ...) is refused whatever its key, and editing its headers would make schemathesis
    re-label it as positive."""
    if case.meta is not None and not case.meta.generation.mode.is_positive:
        return
    headers = case.headers or {}
    key = headers.get(IDEMPOTENCY_KEY)
    if not isinstance(key, str) or not VALID_KEY.fullmatch(key):
        return
    body = json.dumps(case.body, sort_keys=True, default=str) if case.body is not None else ""
    digest = hashlib.sha256(f"{case.method} {case.formatted_path}\n{key}\n{body}".encode()).hexdigest()
    headers[IDEMPOTENCY_KEY] = digest
    case.headers = headers


# specs/04 §2 / GET /api/v1/strategies: an SMA crossover's `slow` window must be longer than its `fast` one (defaults
# fast 10, slow 30). Each bound is in the schema; the relation between the two is not expressible there.
SMA_FAST = ("fast", 10, 1, 500)
SMA_SLOW = ("slow", 30, 2, 2000)


def _int_param(params, spec):
    """The parameter as an int when it is one within its own range (60.0 counts, as in JSON Schema), else None."""
    name, default, low, high = spec
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        return None
    value = int(value)
    return value if low <= value <= high else None


def _instant(text):
    """An RFC 3339 date-time as an aware datetime, or None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("z", "Z").replace("t", "T").replace("Z", "+00:00"))
    except ValueError:
        return None


def _pnl_range_reversed(case):
    """specs/03 §5: `from` later than `to` on GET …/pnl is 400; the schema states each bound, not their order."""
    if not case.formatted_path.endswith("/pnl"):
        return False
    query = case.query or {}
    start, end = _instant(query.get("from")), _instant(query.get("to"))
    return start is not None and end is not None and start > end


# specs/06 §6.1: a simulated range holds at least one and at most 10,000,000 whole bars of step_s (default 60).
MAX_SIM_BARS = 10_000_000


def _backtest_request_breaks_a_cross_field_rule(case):
    """specs/03 §3 notes for POST /api/v1/backtests, rules across fields that the schema states only one by one: with
    neither agent_id nor config the source must be `observations`; a `sim` range must hold 1..=10,000,000 bars."""
    if case.method.upper() != "POST" or case.operation.path != "/api/v1/backtests":
        return False
    body = case.body if isinstance(case.body, dict) else {}
    source = body.get("source") if isinstance(body.get("source"), dict) else {}
    if "agent_id" not in body and "config" not in body and source.get("kind") != "observations":
        return True
    if source.get("kind") != "sim":
        return False
    start, end = _instant(source.get("from")), _instant(source.get("to"))
    step = source.get("step_s", 60)
    if start is None or end is None or isinstance(step, bool) or not isinstance(step, (int, float)) or step < 1:
        return False
    bars = int((end.timestamp() - start.timestamp()) // int(step))
    return not 1 <= bars <= MAX_SIM_BARS


@schemathesis.hook
def filter_case(context, case):
    """Drops schema-valid requests that break a rule across fields: the SMA window rule (the server rightly refuses
    them with 422 naming /strategy/params/slow), a backtest request's source rules (422) and a PnL range whose `from`
    is after its `to` (400); schemathesis
    would count either as a valid request rejected. Negative cases are kept: they are refused for their own
    violation whatever the windows."""
    if case.meta is not None and not case.meta.generation.mode.is_positive:
        return True
    if _pnl_range_reversed(case) or _backtest_request_breaks_a_cross_field_rule(case):
        return False
    body = case.body if isinstance(case.body, dict) else {}
    # A backtest request carries an agent config under `config`.
    if isinstance(body.get("config"), dict):
        body = body["config"]
    strategy = body.get("strategy")
    if not isinstance(strategy, dict) or strategy.get("kind") != "sma_crossover":
        return True
    params = strategy.get("params", {})
    if not isinstance(params, dict):
        return True
    fast, slow = _int_param(params, SMA_FAST), _int_param(params, SMA_SLOW)
    return fast is None or slow is None or slow > fast


# Answers the contract documents but schemathesis cannot tell from a fault, each matched exactly; anything else that
# fails a check still fails the run.
#
# 1. specs/04 §3, UpdateAgentConfig: once an agent has been started, a PATCH that changes its symbol or starting_cash
#    is refused with 422 `validation_failed`. It depends on the agent's history, not on the request, so schemathesis
#    reports "schema-valid request rejected". (Should the domain make it a 409 state conflict, delete this case.)
# 2. specs/03 §3 notes: a GET of an agent the write side has but the read model not yet waits for the projection, and
#    answers 503 `unavailable` if it does not catch up in time. On Postgres the projector reads only below the
#    oldest transaction still open in the whole cluster (the safe cursor of specs/02 §2), so any long transaction —
#    another test suite sharing the server, say — holds it back; schemathesis reports that 503 as a server error.
LOCKED_AFTER_START = "cannot change once the agent has been started"
NOT_CAUGHT_UP = "the read model has not caught up with it yet"


def _documented_refusal(case, response):
    try:
        problem = json.loads(response.content)
    except (TypeError, ValueError):
        return False
    if not isinstance(problem, dict):
        return False
    detail = problem.get("detail", "")
    if response.status_code == 422 and case.method.upper() == "PATCH" and case.operation.path == "/api/v1/agents/{id}":
        return (
            problem.get("code") == "validation_failed"
            and problem.get("field") in ("/symbol", "/starting_cash")
            and LOCKED_AFTER_START in detail
        )
    if response.status_code == 503 and case.method.upper() == "GET":
        return problem.get("code") == "unavailable" and NOT_CAUGHT_UP in detail
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    return not _documented_refusal(case, response)
