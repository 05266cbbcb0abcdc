//! What a chat message asks for: the bot's commands, parsed from text without touching the network.

/// Most trades `/trades` lists.
pub const MAX_TRADES: u32 = 50;
/// Trades `/trades` lists without a count.
pub const DEFAULT_TRADES: u32 = 10;
/// Most days `/daily` lists.
pub const MAX_DAYS: u32 = 31;
/// Days `/daily` lists without a count.
pub const DEFAULT_DAYS: u32 = 7;
/// Longest message the bot reads; anything longer is answered with [`ParseError::TooLong`].
pub const MAX_MESSAGE_CHARS: usize = 512;

/// A command of the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Link(String),
    Unlink,
    Agents,
    Status(Option<String>),
    Pnl(Option<String>),
    Trades(Option<String>, u32),
    Positions,
    Daily(u32),
    Start(String),
    Stop(String),
    /// `/notify`: the chat's notifications; `/notify <agent> on|off`: fills and risk refusals of that agent.
    Notify(Option<(String, bool)>),
}

/// Why a message is not a command the bot can run; each says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "That message is too long ({0} characters); commands are short. Send /help for the list."
    )]
    TooLong(usize),
    #[error("Send a command such as /agents; /help lists them.")]
    NotACommand,
    #[error("I do not know /{0}. Send /help for the list of commands.")]
    Unknown(String),
    #[error("Usage: {0}")]
    Usage(&'static str),
}

impl Command {
    /// Whether running it changes something (an agent's state or the chat's link), not just reads.
    pub fn is_command(&self) -> bool {
        matches!(
            self,
            Command::Start(_) | Command::Stop(_) | Command::Link(_) | Command::Unlink
        )
    }
}

/// The command list `/help` sends.
pub const HELP: &str = "STROM bot commands:
/agents — your agents and their state
/status [agent] — an agent's state (all agents without one)
/pnl [agent] — equity, realized, unrealized, fees, return
/trades [agent] [n] — the last n trades (default 10, at most 50)
/positions — each agent's position
/daily [n] — PnL per UTC day over the last n days (default 7, at most 31)
/start <agent> — start an agent
/stop <agent> — stop an agent (asks to confirm)
/notify <agent> on|off — tell this chat about the agent's fills and risk refusals; /notify lists them
/link <code> — link this chat (code from the dashboard or POST /api/v1/telegram/link-codes)
/unlink — unlink this chat
Agents are named by name or by the first characters of their id.";

/// Parses a message. `bot_username` (without `@`) lets `/cmd@thisbot` through and refuses `/cmd@otherbot` as not
/// a command for us.
///
/// # Errors
/// What is wrong with the message, phrased as the answer to send.
pub fn parse(text: &str, bot_username: Option<&str>) -> Result<Command, ParseError> {
    let chars = text.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(ParseError::TooLong(chars));
    }
    let mut words = text.split_whitespace();
    let head = words.next().ok_or(ParseError::NotACommand)?;
    let name = head.strip_prefix('/').ok_or(ParseError::NotACommand)?;
    let name = match name.split_once('@') {
        Some((name, to)) => {
            if bot_username.is_some_and(|me| !me.eq_ignore_ascii_case(to)) {
                return Err(ParseError::NotACommand);
            }
            name
        }
        None => name,
    };
    let args: Vec<&str> = words.collect();
    let name = name.to_ascii_lowercase();
    let one = |usage: &'static str| -> Result<String, ParseError> {
        match args.as_slice() {
            [arg] => Ok((*arg).to_owned()),
            _ => Err(ParseError::Usage(usage)),
        }
    };
    let optional = |usage: &'static str| -> Result<Option<String>, ParseError> {
        match args.as_slice() {
            [] => Ok(None),
            [arg] => Ok(Some((*arg).to_owned())),
            _ => Err(ParseError::Usage(usage)),
        }
    };
    let none = |usage: &'static str| -> Result<(), ParseError> {
        if args.is_empty() {
            Ok(())
        } else {
            Err(ParseError::Usage(usage))
        }
    };
    Ok(match name.as_str() {
        "help" | "start" if name == "help" || args.is_empty() => {
            // A bare /start is what Telegram sends when a user opens the bot: answer with the help.
            none("/help")?;
            Command::Help
        }
        "start" => Command::Start(one("/start <agent>")?),
        "stop" => Command::Stop(one("/stop <agent>")?),
        "link" => Command::Link(one("/link <code>")?),
        "unlink" => {
            none("/unlink")?;
            Command::Unlink
        }
        "agents" => {
            none("/agents")?;
            Command::Agents
        }
        "positions" => {
            none("/positions")?;
            Command::Positions
        }
        "status" => Command::Status(optional("/status [agent]")?),
        "notify" => {
            const USAGE: &str = "/notify <agent> on|off, or /notify to list";
            match args.as_slice() {
                [] => Command::Notify(None),
                [agent, switch] => {
                    let on = match switch.to_ascii_lowercase().as_str() {
                        "on" => true,
                        "off" => false,
                        _ => return Err(ParseError::Usage(USAGE)),
                    };
                    Command::Notify(Some(((*agent).to_owned(), on)))
                }
                _ => return Err(ParseError::Usage(USAGE)),
            }
        }
        "pnl" => Command::Pnl(optional("/pnl [agent]")?),
        "trades" => {
            const USAGE: &str = "/trades [agent] [n] (n from 1 to 50)";
            let count = |s: &str| {
                s.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_TRADES).contains(n))
                    .ok_or(ParseError::Usage(USAGE))
            };
            match args.as_slice() {
                [] => Command::Trades(None, DEFAULT_TRADES),
                [n] if n.chars().all(|c| c.is_ascii_digit()) => Command::Trades(None, count(n)?),
                [agent] => Command::Trades(Some((*agent).to_owned()), DEFAULT_TRADES),
                [agent, n] => Command::Trades(Some((*agent).to_owned()), count(n)?),
                _ => return Err(ParseError::Usage(USAGE)),
            }
        }
        "daily" => {
            const USAGE: &str = "/daily [n] (n from 1 to 31 days)";
            match args.as_slice() {
                [] => Command::Daily(DEFAULT_DAYS),
                [n] => Command::Daily(
                    n.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_DAYS).contains(n))
                        .ok_or(ParseError::Usage(USAGE))?,
                ),
                _ => return Err(ParseError::Usage(USAGE)),
            }
        }
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(ParseError::Unknown(shown));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_their_arguments() {
        assert_eq!(parse("/help", None), Ok(Command::Help));
        assert_eq!(parse("/start", None), Ok(Command::Help));
        assert_eq!(
            parse("/start alpha", None),
            Ok(Command::Start("alpha".into()))
        );
        assert_eq!(
            parse("  /STOP   d3e0 ", None),
            Ok(Command::Stop("d3e0".into()))
        );
        assert_eq!(
            parse("/link ABCD2345", None),
            Ok(Command::Link("ABCD2345".into()))
        );
        assert_eq!(parse("/unlink", None), Ok(Command::Unlink));
        assert_eq!(parse("/agents", None), Ok(Command::Agents));
        assert_eq!(parse("/positions", None), Ok(Command::Positions));
        assert_eq!(parse("/status", None), Ok(Command::Status(None)));
        assert_eq!(
            parse("/status a", None),
            Ok(Command::Status(Some("a".into())))
        );
        assert_eq!(parse("/pnl a", None), Ok(Command::Pnl(Some("a".into()))));
        assert_eq!(parse("/trades", None), Ok(Command::Trades(None, 10)));
        assert_eq!(parse("/trades 3", None), Ok(Command::Trades(None, 3)));
        assert_eq!(
            parse("/trades a", None),
            Ok(Command::Trades(Some("a".into()), 10))
        );
        assert_eq!(
            parse("/trades a 50", None),
            Ok(Command::Trades(Some("a".into()), 50))
        );
        assert_eq!(parse("/daily", None), Ok(Command::Daily(7)));
        assert_eq!(parse("/daily 31", None), Ok(Command::Daily(31)));
        assert_eq!(parse("/notify", None), Ok(Command::Notify(None)));
        assert_eq!(
            parse("/notify a ON", None),
            Ok(Command::Notify(Some(("a".into(), true))))
        );
        assert_eq!(
            parse("/notify a off", None),
            Ok(Command::Notify(Some(("a".into(), false))))
        );
        assert!(matches!(
            parse("/notify a", None),
            Err(ParseError::Usage(_))
        ));
        assert!(matches!(
            parse("/notify a maybe", None),
            Err(ParseError::Usage(_))
        ));
    }

    #[test]
    fn the_bot_username_suffix_is_accepted_only_for_this_bot() {
        assert_eq!(
            parse("/agents@strom_bot", Some("strom_bot")),
            Ok(Command::Agents)
        );
        assert_eq!(
            parse("/agents@other_bot", Some("strom_bot")),
            Err(ParseError::NotACommand)
        );
    }

    #[test]
    fn bad_messages_get_an_answer_not_a_panic() {
        assert_eq!(parse("hello", None), Err(ParseError::NotACommand));
        assert_eq!(parse("", None), Err(ParseError::NotACommand));
        assert_eq!(parse("/", None), Err(ParseError::Unknown(String::new())));
        assert_eq!(
            parse("/frobnicate", None),
            Err(ParseError::Unknown("frobnicate".into()))
        );
        assert!(matches!(parse("/stop", None), Err(ParseError::Usage(_))));
        assert!(matches!(
            parse("/stop a b", None),
            Err(ParseError::Usage(_))
        ));
        assert!(matches!(parse("/link", None), Err(ParseError::Usage(_))));
        assert!(matches!(
            parse("/agents x", None),
            Err(ParseError::Usage(_))
        ));
        assert!(matches!(
            parse("/trades a 0", None),
            Err(ParseError::Usage(_))
        ));
        assert!(matches!(
            parse("/trades a 51", None),
            Err(ParseError::Usage(_))
        ));
        assert!(matches!(
            parse("/trades 99999999999999999999", None),
            Err(ParseError::Usage(_))
        ));
        assert!(matches!(
            parse("/daily 32", None),
            Err(ParseError::Usage(_))
        ));
        assert!(matches!(
            parse("/daily -1", None),
            Err(ParseError::Usage(_))
        ));
        let long = format!("/agents {}", "x".repeat(MAX_MESSAGE_CHARS));
        assert!(matches!(parse(&long, None), Err(ParseError::TooLong(_))));
        // Multi-byte text is counted in characters and cut on character boundaries.
        let name = "é".repeat(40);
        assert_eq!(
            parse(&format!("/{name}"), None),
            Err(ParseError::Unknown("é".repeat(32)))
        );
    }
}
