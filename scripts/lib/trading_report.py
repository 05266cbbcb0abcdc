"""Prints an agent's paper trading as tables and checks it with exact decimals (used by scripts/demo-m2.sh).

Usage: python3 scripts/lib/trading_report.py DIR
DIR holds the response bodies the demo fetched: orders.json (GET /agents/{id}/orders?limit=200), orders-paged.json
(the same listing walked with limit=2 and its cursors, items concatenated), trades.json, positions.json, summary.json,
pnl.json (every point, oldest first) and pnl-thin.json (?max_points=MAX_POINTS). Every number is a decimal string
(specs/03 §1), read with `decimal.Decimal`, never float: the checks are exact to the last digit, as the contract
states them (specs/03 §5, specs/06 §4). Prints the tables and one line per check; exits 1 naming the first failed
check.
"""

import json
import sys
from decimal import ROUND_HALF_EVEN, Decimal, getcontext
from pathlib import Path

# rust_decimal keeps 28 significant digits; a wider context here never rounds a sum of them.
getcontext().prec = 60
ZERO = Decimal(0)
HUNDRED = Decimal(100)
MAX_POINTS = 5


def load(directory, name):
    with open(Path(directory) / name, encoding="utf-8") as f:
        return json.load(f)


def dec(value):
    return Decimal(value)


def rounded(value, places):
    """rust_decimal's `round_dp` (half to even), the rounding specs/03 §5 states for return_pct, win_rate and
    max_drawdown_pct."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def table(headers, rows):
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers))
    for row in rows:
        print(line.format(*(str(c) for c in row)))


class Checks:
    def __init__(self):
        self.failed = []

    def check(self, what, ok, detail=""):
        print(f"{what}: {'yes' if ok else 'NO'}{'' if ok or not detail else ' (' + detail + ')'}")
        if not ok:
            self.failed.append(what)


def report(directory):
    orders = load(directory, "orders.json")["items"]
    paged = load(directory, "orders-paged.json")["items"]
    trades = load(directory, "trades.json")["items"]
    positions = load(directory, "positions.json")["items"]
    summary = load(directory, "summary.json")
    points = load(directory, "pnl.json")["items"]
    thin = load(directory, "pnl-thin.json")
    checks = Checks()

    print("\n== orders (oldest first; GET /api/v1/agents/{id}/orders)")
    table(
        ["#", "side", "qty", "status", "fill_price", "fee", "reason_code", "reason"],
        [
            (i + 1, o["side"], o["qty"], o["status"], o["fill_price"] or "-", o["fee"] or "-",
             o["reason_code"] or "-", o["reason"] or "-")
            for i, o in enumerate(reversed(orders))
        ],
    )
    print("\n== trades (oldest first; GET /api/v1/agents/{id}/trades)")
    table(
        ["#", "side", "qty", "price", "fee", "notional", "realized_pnl"],
        [
            (i + 1, t["side"], t["qty"], t["price"], t["fee"], t["notional"], t["realized_pnl"])
            for i, t in enumerate(reversed(trades))
        ],
    )

    print("\n== position (GET /api/v1/agents/{id}/positions)")
    checks.check("exactly one position", len(positions) == 1, f"{len(positions)} items")
    p = positions[0]
    for key in ["symbol", "qty", "cost_basis", "avg_price", "cash", "starting_cash", "mark_price", "equity",
                "realized_pnl", "unrealized_pnl", "fees", "pnl"]:
        print(f"  {key:<15} {p[key]}")

    print("\n== PnL summary (GET /api/v1/agents/{id}/summary)")
    for key in ["starting_cash", "cash", "position_qty", "mark_price", "equity", "realized_pnl", "unrealized_pnl",
                "fees", "pnl", "return_pct", "orders_placed", "orders_rejected", "trades", "closing_trades",
                "winning_trades", "win_rate", "max_drawdown", "max_drawdown_pct"]:
        print(f"  {key:<17} {summary[key]}")

    print("\n== checks (exact decimal arithmetic)")
    # The listings: order, paging, and what the rest is recomputed from.
    keys = [(o["created_at"], o["order_id"]) for o in orders]
    checks.check("orders are newest first by (created_at, order_id)", keys == sorted(keys, reverse=True))
    checks.check("walking the orders with limit=2 and next_cursor gives the same orders",
                 [o["order_id"] for o in paged] == [o["order_id"] for o in orders],
                 f"{len(paged)} vs {len(orders)}")
    keys = [(t["filled_at"], t["trade_id"]) for t in trades]
    checks.check("trades are newest first by (filled_at, trade_id)", keys == sorted(keys, reverse=True))
    filled = {o["order_id"]: o for o in orders if o["status"] == "filled"}
    checks.check("one trade per filled order, trade_id = order_id",
                 sorted(filled) == sorted(t["trade_id"] for t in trades)
                 and all(t["trade_id"] == t["order_id"] for t in trades))
    checks.check("each trade's notional = price × qty",
                 all(dec(t["notional"]) == dec(t["price"]) * dec(t["qty"]) for t in trades))

    # The identity, on the position and on the summary.
    for name, v, qty_key in [("position", p, "qty"), ("summary", summary, "position_qty")]:
        pnl, equity, start = dec(v["pnl"]), dec(v["equity"]), dec(v["starting_cash"])
        parts = dec(v["realized_pnl"]) + dec(v["unrealized_pnl"]) - dec(v["fees"])
        checks.check(f"{name}: pnl = realized_pnl + unrealized_pnl − fees = equity − starting_cash",
                     pnl == parts == equity - start, f"pnl {pnl}, parts {parts}, equity − start {equity - start}")
        mark = dec(v["mark_price"]) if v["mark_price"] is not None else ZERO
        checks.check(f"{name}: equity = cash + qty × mark_price", equity == dec(v["cash"]) + dec(v[qty_key]) * mark)

    # The position again, from the trades alone.
    buys = [t for t in trades if t["side"] == "buy"]
    sells = [t for t in trades if t["side"] == "sell"]
    qty = sum((dec(t["qty"]) for t in buys), ZERO) - sum((dec(t["qty"]) for t in sells), ZERO)
    fees = sum((dec(t["fee"]) for t in trades), ZERO)
    cash = (dec(p["starting_cash"]) - sum((dec(t["notional"]) for t in buys), ZERO) - fees
            + sum((dec(t["notional"]) for t in sells), ZERO))
    realized = sum((dec(t["realized_pnl"]) for t in trades), ZERO)
    checks.check("position qty = Σ buys − Σ sells", dec(p["qty"]) == qty, f"{p['qty']} vs {qty}")
    checks.check("position cash = starting − Σ buy notional − Σ fees + Σ sell notional", dec(p["cash"]) == cash,
                 f"{p['cash']} vs {cash}")
    checks.check("position fees = Σ trade fees", dec(p["fees"]) == fees, f"{p['fees']} vs {fees}")
    checks.check("position realized_pnl = Σ trade realized_pnl", dec(p["realized_pnl"]) == realized,
                 f"{p['realized_pnl']} vs {realized}")
    same = ["cash", "equity", "realized_pnl", "unrealized_pnl", "fees", "pnl", "starting_cash", "avg_price"]
    checks.check("summary agrees with the position",
                 all(dec(summary[k]) == dec(p[k]) for k in same) and dec(summary["position_qty"]) == dec(p["qty"]))

    # The summary's counts and ratios, from the listings.
    placed = sum(1 for o in orders if o["status"] in ("accepted", "filled"))
    rejected = sum(1 for o in orders if o["status"] == "rejected")
    winning = sum(1 for t in sells if dec(t["realized_pnl"]) - dec(t["fee"]) > 0)
    checks.check("orders_placed / orders_rejected / trades / closing_trades / winning_trades match the listings",
                 (summary["orders_placed"], summary["orders_rejected"], summary["trades"], summary["closing_trades"],
                  summary["winning_trades"]) == (placed, rejected, len(trades), len(sells), winning),
                 f"expected {(placed, rejected, len(trades), len(sells), winning)}")
    win_rate = None if not sells else rounded(Decimal(winning) / Decimal(len(sells)) * HUNDRED, 2)
    got = None if summary["win_rate"] is None else dec(summary["win_rate"])
    checks.check("win_rate = winning / closing × 100 (2 dp; null without a closing trade)", got == win_rate,
                 f"{summary['win_rate']} vs {win_rate}")
    return_pct = rounded(dec(summary["pnl"]) / dec(summary["starting_cash"]) * HUNDRED, 4)
    checks.check("return_pct = pnl / starting_cash × 100 (4 dp)", dec(summary["return_pct"]) == return_pct,
                 f"{summary['return_pct']} vs {return_pct}")

    # Drawdown over the PnL points, oldest first, the peak starting at starting_cash.
    keys = [(pt["session"], pt["tick_no"]) for pt in points]
    checks.check("PnL points are oldest first by (session, tick_no)", keys == sorted(keys))
    peak, worst, worst_peak = dec(summary["starting_cash"]), ZERO, None
    for pt in points:
        equity = dec(pt["equity"])
        peak = max(peak, equity)
        if peak - equity > worst:
            worst, worst_peak = peak - equity, peak
    worst_pct = ZERO if worst_peak is None else rounded(worst / worst_peak * HUNDRED, 4)
    checks.check("max_drawdown and max_drawdown_pct recomputed from the PnL points",
                 dec(summary["max_drawdown"]) == worst and dec(summary["max_drawdown_pct"]) == worst_pct,
                 f"{summary['max_drawdown']} / {summary['max_drawdown_pct']} vs {worst} / {worst_pct}")
    checks.check("every PnL point: pnl = realized + unrealized − fees = equity − starting_cash",
                 all(dec(pt["pnl"]) == dec(pt["realized_pnl"]) + dec(pt["unrealized_pnl"]) - dec(pt["fees"])
                     == dec(pt["equity"]) - dec(summary["starting_cash"]) for pt in points))

    # max_points: the chart form of the same series.
    items = thin["items"]
    checks.check(f"pnl?max_points={MAX_POINTS}: at most {MAX_POINTS} points, first and last kept, no next_cursor",
                 0 < len(items) <= MAX_POINTS and thin["next_cursor"] is None and bool(points)
                 and items[0] == points[0] and items[-1] == points[-1] and all(i in points for i in items),
                 f"{len(items)} of {len(points)} points")
    print(f"(the chart form keeps {len(items)} of {len(points)} points)")

    if checks.failed:
        print(f"\nfailed: {checks.failed[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(report(sys.argv[1]))
