//! The bot's answers as text: pure functions of what the API returned, so they are tested without a network.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::client::{Agent, PnlPoint, Position, Summary, Trade};

/// Telegram's limit on a message's text.
pub const MAX_REPLY_CHARS: usize = 4096;
/// The shortest id prefix that names an agent.
pub const MIN_ID_PREFIX: usize = 4;

/// The one line an unlinked chat gets (specs/05 §5).
pub const NOT_LINKED: &str =
    "This chat is not linked; use /link <code> with a code from the STROM dashboard.";
/// The answer when the API does not answer.
pub const API_DOWN: &str =
    "The STROM API is not reachable right now; please try again in a minute.";
/// The answer to a chat over its rate limit.
pub const SLOW_DOWN: &str = "Easy there: at most one command per second. Please wait a moment.";
/// The answer to someone in a linked group who is not the user who linked it.
pub const NOT_YOURS: &str = "Only the Telegram user who linked this chat can command the bot here.";

/// `text` cut to Telegram's limit, on a character boundary.
pub fn fit(text: String) -> String {
    if text.chars().count() <= MAX_REPLY_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_REPLY_CHARS - 2).collect();
    cut.push_str(" …");
    cut
}

/// The first 8 characters of an id, as the bot shows it.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The agent `query` names among `agents`: an exact name (case-insensitive) or a unique id prefix of at least
/// [`MIN_ID_PREFIX`] characters.
///
/// # Errors
/// The answer to send when it names none or several.
pub fn resolve<'a>(agents: &'a [Agent], query: &str) -> Result<&'a Agent, String> {
    let by_name: Vec<&Agent> = agents
        .iter()
        .filter(|a| a.name.eq_ignore_ascii_case(query))
        .collect();
    let query_lower = query.to_ascii_lowercase();
    let by_id: Vec<&Agent> = if query.len() >= MIN_ID_PREFIX {
        agents
            .iter()
            .filter(|a| a.agent_id.starts_with(&query_lower))
            .collect()
    } else {
        Vec::new()
    };
    let matches = if by_name.is_empty() { by_id } else { by_name };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "No agent of yours is called or has an id starting with \"{}\". /agents lists them.",
            query.chars().take(64).collect::<String>()
        )),
        several => {
            let mut text = format!(
                "\"{query}\" names {} agents; use more of the id:",
                several.len()
            );
            for a in several {
                let _ = write!(text, "\n• {} ({})", a.name, short_id(&a.agent_id));
            }
            Err(text)
        }
    }
}

/// `/agents` (and `/status` without an agent).
pub fn agents(agents: &[Agent]) -> String {
    if agents.is_empty() {
        return "You have no agents yet; create one in the dashboard.".into();
    }
    let mut text = format!("Your agents ({}):", agents.len());
    for a in agents {
        let _ = write!(
            text,
            "\n• {} ({}) {} — {}",
            a.name,
            short_id(&a.agent_id),
            a.symbol,
            a.status
        );
    }
    text
}

/// `/status <agent>`.
pub fn status(agent: &Agent) -> String {
    let last = agent.last_run_at.map_or_else(
        || "never".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    );
    format!(
        "{} ({})\nsymbol: {}\nstatus: {}\nruns: {}\nlast run: {last}",
        agent.name, agent.agent_id, agent.symbol, agent.status, agent.runs_count
    )
}

/// `/pnl <agent>`: the summary's equity, realized, unrealized, fees, pnl and return, as the API gives them.
pub fn pnl(agent: &Agent, s: &Summary) -> String {
    format!(
        "{} ({}) {}\nequity: {}\nrealized: {}\nunrealized: {}\nfees: {}\npnl: {}\nreturn: {}%\ntrades: {}",
        agent.name,
        short_id(&agent.agent_id),
        s.symbol,
        s.equity,
        s.realized_pnl,
        s.unrealized_pnl,
        s.fees,
        s.pnl,
        s.return_pct,
        s.trades
    )
}

/// `/trades <agent> [n]`.
pub fn trades(agent: &Agent, trades: &[Trade]) -> String {
    if trades.is_empty() {
        return format!("{} has no trades yet.", agent.name);
    }
    let mut text = format!(
        "{}: last {} trade(s), newest first",
        agent.name,
        trades.len()
    );
    for t in trades {
        let _ = write!(
            text,
            "\n{} {} {} @ {} fee {} realized {}",
            t.filled_at.format("%m-%d %H:%M:%S"),
            t.side,
            t.qty,
            t.price,
            t.fee,
            t.realized_pnl
        );
    }
    text
}

/// `/positions`: one line per agent.
pub fn positions(rows: &[(Agent, Option<Position>)]) -> String {
    if rows.is_empty() {
        return "You have no agents yet; create one in the dashboard.".into();
    }
    let mut text = "Positions:".to_owned();
    for (agent, position) in rows {
        match position {
            Some(p) => {
                let mark = p
                    .mark_price
                    .map_or_else(|| "-".to_owned(), |m| m.to_string());
                let _ = write!(
                    text,
                    "\n• {} ({}): {} {} avg {} mark {} equity {} pnl {}",
                    agent.name,
                    short_id(&agent.agent_id),
                    p.qty,
                    p.symbol,
                    p.avg_price,
                    mark,
                    p.equity,
                    p.pnl
                );
            }
            None => {
                let _ = write!(
                    text,
                    "\n• {} ({}): no position",
                    agent.name,
                    short_id(&agent.agent_id)
                );
            }
        }
    }
    text
}

/// PnL made per UTC day over the days `from_day..=today`, from an agent's PnL points (oldest first): a day's
/// change is its last point's `pnl` minus the last `pnl` before that day (0 before the first point). Days without
/// a point are left out.
pub fn daily_changes(points: &[PnlPoint], baseline: Decimal) -> BTreeMap<NaiveDate, Decimal> {
    let mut last_of_day: BTreeMap<NaiveDate, Decimal> = BTreeMap::new();
    for p in points {
        last_of_day.insert(p.at.date_naive(), p.pnl);
    }
    let mut previous = baseline;
    last_of_day
        .into_iter()
        .map(|(day, pnl)| {
            let change = pnl - previous;
            previous = pnl;
            (day, change)
        })
        .collect()
}

/// `/daily [n]`: per UTC day, the sum over the user's agents of the day's PnL change.
pub fn daily(
    days: u32,
    today: DateTime<Utc>,
    per_agent: &[BTreeMap<NaiveDate, Decimal>],
) -> String {
    let mut total: BTreeMap<NaiveDate, Decimal> = BTreeMap::new();
    for changes in per_agent {
        for (day, change) in changes {
            *total.entry(*day).or_default() += change;
        }
    }
    let mut text = format!("PnL per UTC day, last {days} day(s), all agents:");
    for back in (0..days).rev() {
        let day = today.date_naive() - chrono::Days::new(u64::from(back));
        let change = total.get(&day).copied().unwrap_or_default();
        let _ = write!(text, "\n{day}: {change}");
    }
    text
}

/// The message for a notified agent's stream event: fills and risk refusals; `None` for every other event.
pub fn notification(agent: &Agent, event: &str, data: &str) -> Option<String> {
    let data: serde_json::Value = serde_json::from_str(data).ok()?;
    let payload = &data["envelope"]["payload"][event];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_owned();
    match event {
        "OrderFilled" => Some(format!(
            "{} ({}): filled {} {} @ {} (fee {})",
            agent.name,
            short_id(&agent.agent_id),
            text(&payload["side"]),
            text(&payload["qty"]),
            text(&payload["price"]),
            text(&payload["fee"])
        )),
        "OrderRejected" => Some(format!(
            "{} ({}): risk refused {} {}: {}",
            agent.name,
            short_id(&agent.agent_id),
            text(&payload["side"]),
            text(&payload["qty"]),
            text(&payload["reason"])
        )),
        _ => None,
    }
}

/// What a refused or failed API call tells the user.
pub fn api_error(e: &crate::client::ApiError) -> String {
    use crate::client::ApiError;
    match e {
        ApiError::Unreachable(_) => API_DOWN.into(),
        ApiError::Problem { status: 403, .. } => {
            "Your role does not allow that (a viewer can read but not start or stop agents).".into()
        }
        ApiError::Problem { status: 404, .. } => "Not found (it may have been deleted).".into(),
        ApiError::Problem { status: 429, .. } => "Too many requests; please wait a moment.".into(),
        ApiError::Problem {
            status: 409,
            detail,
            ..
        } => format!("Not possible now: {detail}"),
        ApiError::Problem { status, .. } if *status >= 500 => {
            "The STROM API had a problem; please try again later.".into()
        }
        ApiError::Problem { detail, .. } => format!("Refused: {detail}"),
        ApiError::Unexpected(_) => {
            "The STROM API answered unexpectedly; please try again later.".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn agent(id: &str, name: &str) -> Agent {
        Agent {
            agent_id: id.into(),
            name: name.into(),
            symbol: "BTC-USD".into(),
            status: "running".into(),
            runs_count: 3,
            last_run_at: None,
        }
    }

    #[test]
    fn agents_are_named_by_name_or_unique_id_prefix() {
        let list = vec![
            agent("d3e00000-0000-4000-8000-000000000001", "alpha"),
            agent("d3e00000-0000-4000-8000-000000000002", "beta"),
            agent("ab120000-0000-4000-8000-000000000003", "Gamma"),
        ];
        assert_eq!(resolve(&list, "ALPHA").unwrap().name, "alpha");
        assert_eq!(resolve(&list, "gamma").unwrap().name, "Gamma");
        assert_eq!(resolve(&list, "ab12").unwrap().name, "Gamma");
        assert_eq!(resolve(&list, "AB12").unwrap().name, "Gamma");
        let ambiguous = resolve(&list, "d3e0").unwrap_err();
        assert!(
            ambiguous.contains("names 2 agents")
                && ambiguous.contains("alpha")
                && ambiguous.contains("beta")
        );
        assert!(
            resolve(&list, "ab1").unwrap_err().contains("No agent"),
            "prefixes under 4 characters name nothing"
        );
        assert!(resolve(&list, "zzzz").unwrap_err().contains("No agent"));
    }

    #[test]
    fn daily_changes_are_differences_of_each_days_last_pnl() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let points = vec![
            PnlPoint {
                at: at("2026-12-01T10:00:00Z"),
                pnl: dec!(5),
            },
            PnlPoint {
                at: at("2026-12-01T23:59:59Z"),
                pnl: dec!(7),
            },
            PnlPoint {
                at: at("2026-12-02T00:00:00Z"),
                pnl: dec!(4),
            },
            PnlPoint {
                at: at("2026-12-02T12:00:00Z"),
                pnl: dec!(1.5),
            },
        ];
        let changes = daily_changes(&points, dec!(0));
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(changes[&day("2026-12-01")], dec!(7));
        assert_eq!(changes[&day("2026-12-02")], dec!(-5.5));
        let text = daily(3, at("2026-12-02T13:00:00Z"), &[changes.clone(), changes]);
        assert_eq!(
            text,
            "PnL per UTC day, last 3 day(s), all agents:\n2026-11-30: 0\n2026-12-01: 14\n2026-12-02: -11.0"
        );
    }

    #[test]
    fn fills_and_refusals_are_notified_and_nothing_else() {
        let a = agent("d3e00000-0000-4000-8000-000000000001", "alpha");
        let filled = r#"{"envelope":{"payload":{"OrderFilled":{"side":"buy","qty":"0.1","price":"100.5","fee":"0"}}}}"#;
        assert_eq!(
            notification(&a, "OrderFilled", filled).unwrap(),
            "alpha (d3e00000): filled buy 0.1 @ 100.5 (fee 0)"
        );
        let refused = r#"{"envelope":{"payload":{"OrderRejected":{"side":"sell","qty":"1","reason":"no position"}}}}"#;
        assert_eq!(
            notification(&a, "OrderRejected", refused).unwrap(),
            "alpha (d3e00000): risk refused sell 1: no position"
        );
        assert_eq!(notification(&a, "AgentRunRecorded", filled), None);
        assert_eq!(notification(&a, "OrderFilled", "not json"), None);
    }

    #[test]
    fn long_replies_are_cut_to_telegrams_limit() {
        let text = fit("é".repeat(MAX_REPLY_CHARS + 10));
        assert_eq!(text.chars().count(), MAX_REPLY_CHARS);
        assert_eq!(fit("short".into()), "short");
    }
}
