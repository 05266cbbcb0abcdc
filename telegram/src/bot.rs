//! What the bot does with a message or a button press ([`Core`], independent of teloxide), and the teloxide
//! dispatcher that feeds it from long polling ([`run`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Duration as ChronoDuration, Utc};
use teloxide::dispatching::UpdateFilterExt;
use teloxide::error_handlers::LoggingErrorHandler;
use teloxide::payloads::{EditMessageTextSetters, SendMessageSetters};
use teloxide::prelude::{Dispatcher, Requester};
use teloxide::types::{
    CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Me, Message, Update,
};
use tracing::Instrument;

use crate::client::{Agent, ApiClient, ApiError, Session};
use crate::command::{self, Command, ParseError};
use crate::format;
use crate::notifications::NotificationStore;

/// Commands per second a chat may send (specs/05 §7)…
const CHAT_RATE_PER_S: f64 = 1.0;
/// …with this burst.
const CHAT_BURST: f64 = 5.0;
/// Chats whose buckets are kept before idle ones (full again) are dropped.
const MAX_BUCKETS: usize = 10_000;
/// Callback data of the stop confirmation: `stop:<agent_id>`.
const STOP_PREFIX: &str = "stop:";
/// Callback data of the cancel button.
const CANCEL: &str = "cancel";

/// A message as the bot sees it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub chat_id: i64,
    /// A private chat with the bot (only those link).
    pub private: bool,
    pub username: Option<String>,
    /// The Telegram user who sent it.
    pub user_id: Option<i64>,
    /// The text; `None` for a sticker, photo and the like.
    pub text: Option<String>,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Say nothing (a group message that is not a command).
    Silent,
    Text(String),
    /// Ask to confirm stopping `agent_id`, with Stop / Cancel buttons.
    ConfirmStop {
        text: String,
        agent_id: String,
    },
}

/// Messages the bot sends on its own (notifications): chat and text.
pub type Outbox = tokio::sync::mpsc::UnboundedReceiver<(i64, String)>;

/// One chat's notifications for one agent: the agent's name and the task following its stream.
struct Subscription {
    name: String,
    task: tokio::task::AbortHandle,
}

/// The bot's behaviour: rate limit, linking, sessions, commands, notifications.
pub struct Core {
    api: ApiClient,
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
    outbox: tokio::sync::mpsc::UnboundedSender<(i64, String)>,
    subscriptions: Mutex<HashMap<(i64, String), Subscription>>,
    store: Arc<NotificationStore>,
}

/// Pause before a notification stream is opened again after it ended or failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// Follows `agent`'s stream for `chat_id` and puts its fills and risk refusals in `outbox`, reconnecting with a fresh
/// session when the stream ends (resuming after the last event heard, `last_id`, so none is missed — across a
/// restart of the bot too: the store keeps it); stops when the chat is no longer linked or the agent no longer
/// visible, and forgets the subscription then.
async fn follow(
    api: ApiClient,
    outbox: tokio::sync::mpsc::UnboundedSender<(i64, String)>,
    store: Arc<NotificationStore>,
    chat_id: i64,
    agent: Agent,
    mut last_id: Option<String>,
) {
    loop {
        let cid = correlation_id();
        match api.session(chat_id, &cid).await {
            Ok(Some(session)) => match api
                .stream(
                    &session.access_token,
                    &agent.agent_id,
                    last_id.as_deref(),
                    &cid,
                )
                .await
            {
                Ok(mut response) => {
                    tracing::info!(correlation_id = %cid, chat_id, agent_id = %agent.agent_id, "following the agent's stream");
                    // Each connection has its own parser: a broken one may leave half a message behind.
                    let mut parser = crate::client::SseParser::default();
                    while let Ok(Some(chunk)) = response.chunk().await {
                        for (event, data) in parser.push(&chunk) {
                            let Some(text) = format::notification(&agent, &event, &data) else {
                                continue;
                            };
                            // Only a chat that is still linked hears about it.
                            if let Ok(None) = api.session(chat_id, &cid).await {
                                store.forget(chat_id, &agent.agent_id);
                                return;
                            }
                            if outbox.send((chat_id, text)).is_err() {
                                return;
                            }
                            // Sent: a restart resumes after it.
                            store.keep(chat_id, &agent.agent_id, parser.last_id());
                        }
                    }
                    if let Some(id) = parser.last_id() {
                        last_id = Some(id.to_owned());
                        store.keep(chat_id, &agent.agent_id, Some(id));
                    }
                }
                Err(e) if e.status() == Some(404) => {
                    store.forget(chat_id, &agent.agent_id);
                    let _ = outbox.send((
                        chat_id,
                        format!(
                            "{} is no longer visible; its notifications are off.",
                            agent.name
                        ),
                    ));
                    return;
                }
                Err(e) => tracing::warn!(error = %e, chat_id, "agent stream failed"),
            },
            Ok(None) => {
                store.forget(chat_id, &agent.agent_id);
                return;
            }
            Err(e) => tracing::warn!(error = %e, chat_id, "session for notifications failed"),
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

impl Core {
    /// The core, and the receiving end of the messages it sends on its own (notifications), whose subscriptions
    /// `store` keeps.
    pub fn new(api: ApiClient, store: Arc<NotificationStore>) -> (Self, Outbox) {
        let (outbox, receiver) = tokio::sync::mpsc::unbounded_channel();
        (
            Self {
                api,
                buckets: Mutex::new(HashMap::new()),
                outbox,
                subscriptions: Mutex::new(HashMap::new()),
                store,
            },
            receiver,
        )
    }

    /// Follows again the subscriptions the store kept (a restart), each from its last event. One whose chat is no
    /// longer linked, or whose agent its user no longer sees, is forgotten (the latter with a line to the chat). An
    /// API that does not answer yet is asked again.
    pub fn restore(self: &Arc<Self>) {
        let core = Arc::clone(self);
        tokio::spawn(async move {
            for stored in core.store.all() {
                loop {
                    let cid = correlation_id();
                    let agents = match core.api.session(stored.chat_id, &cid).await {
                        Ok(Some(session)) => {
                            core.api.agents(&session.access_token, &cid).await.map(Some)
                        }
                        Ok(None) => Ok(None),
                        Err(e) => Err(e),
                    };
                    match agents {
                        Ok(None) => core.store.forget(stored.chat_id, &stored.agent_id),
                        Ok(Some(agents)) => match agents
                            .into_iter()
                            .find(|a| a.agent_id == stored.agent_id)
                        {
                            Some(agent) => {
                                tracing::info!(chat_id = stored.chat_id, agent_id = %agent.agent_id, "notifications restored");
                                core.subscribe(stored.chat_id, agent, stored.last_event_id.clone());
                            }
                            None => {
                                core.store.forget(stored.chat_id, &stored.agent_id);
                                let _ = core.outbox.send((
                                    stored.chat_id,
                                    "An agent you had notifications for is no longer visible; its notifications are off."
                                        .into(),
                                ));
                            }
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, chat_id = stored.chat_id, "cannot restore notifications yet");
                            tokio::time::sleep(RECONNECT_AFTER).await;
                            continue;
                        }
                    }
                    break;
                }
            }
        });
    }

    /// Starts following `agent` for `chat_id` from `last_id` (unless it is followed already); whether it started.
    fn subscribe(&self, chat_id: i64, agent: Agent, last_id: Option<String>) -> bool {
        let mut subscriptions = self.subscriptions();
        subscriptions.retain(|_, s| !s.task.is_finished());
        let key = (chat_id, agent.agent_id.clone());
        if subscriptions.contains_key(&key) {
            return false;
        }
        self.store
            .keep(chat_id, &agent.agent_id, last_id.as_deref());
        let name = agent.name.clone();
        let task = tokio::spawn(follow(
            self.api.clone(),
            self.outbox.clone(),
            Arc::clone(&self.store),
            chat_id,
            agent,
            last_id,
        ))
        .abort_handle();
        subscriptions.insert(key, Subscription { name, task });
        true
    }

    fn subscriptions(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, String), Subscription>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Turns the chat's notifications for `agent` on or off; the answer.
    fn notify(&self, chat_id: i64, agent: Agent, on: bool) -> String {
        if !on {
            let removed = self
                .subscriptions()
                .remove(&(chat_id, agent.agent_id.clone()));
            self.store.forget(chat_id, &agent.agent_id);
            return match removed.filter(|s| !s.task.is_finished()) {
                Some(s) => {
                    s.task.abort();
                    format!("Notifications off for {}.", agent.name)
                }
                None => format!("Notifications for {} were not on.", agent.name),
            };
        }
        let name = agent.name.clone();
        if self.subscribe(chat_id, agent, None) {
            format!("Notifications on for {name}: this chat hears of its fills and risk refusals.")
        } else {
            format!("Notifications for {name} are already on.")
        }
    }

    /// The chat's notifications, by agent name.
    fn notifications(&self, chat_id: i64) -> String {
        let mut subscriptions = self.subscriptions();
        subscriptions.retain(|_, s| !s.task.is_finished());
        let mut names: Vec<&str> = subscriptions
            .iter()
            .filter(|((chat, _), _)| *chat == chat_id)
            .map(|(_, s)| s.name.as_str())
            .collect();
        names.sort_unstable();
        if names.is_empty() {
            "No notifications are on. /notify <agent> on turns them on.".into()
        } else {
            format!("Notifications on for: {}", names.join(", "))
        }
    }

    /// Ends every notification of the chat (it was unlinked).
    fn forget(&self, chat_id: i64) {
        self.subscriptions().retain(|(chat, agent_id), s| {
            if *chat == chat_id {
                s.task.abort();
                self.store.forget(chat_id, agent_id);
            }
            *chat != chat_id
        });
    }

    /// Takes a token from the chat's bucket; false when it is empty.
    fn admit(&self, chat_id: i64) -> bool {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if buckets.len() >= MAX_BUCKETS {
            // A bucket idle for CHAT_BURST seconds is full again: forgetting it changes nothing.
            let full_after = Duration::from_secs_f64(CHAT_BURST / CHAT_RATE_PER_S);
            buckets.retain(|_, (_, last)| now.duration_since(*last) < full_after);
        }
        let (tokens, last) = buckets.entry(chat_id).or_insert((CHAT_BURST, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * CHAT_RATE_PER_S).min(CHAT_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The answer to a message.
    pub async fn on_message(&self, msg: &Incoming, correlation_id: &str) -> Reply {
        let looks_like_command = msg
            .text
            .as_deref()
            .is_some_and(|t| t.trim_start().starts_with('/'));
        if !msg.private && !looks_like_command {
            return Reply::Silent;
        }
        if !self.admit(msg.chat_id) {
            return Reply::Text(format::SLOW_DOWN.into());
        }
        let parsed = match msg.text.as_deref() {
            Some(text) => command::parse(text, None),
            None => Err(ParseError::NotACommand),
        };
        if let Ok(Command::Link(code)) = &parsed {
            return Reply::Text(self.link(msg, code, correlation_id).await);
        }
        let session = match self.api.session(msg.chat_id, correlation_id).await {
            Ok(Some(session)) => session,
            Ok(None) => return Reply::Text(format::NOT_LINKED.into()),
            Err(e) => {
                tracing::warn!(error = %e, "session request failed");
                return Reply::Text(format::api_error(&e));
            }
        };
        if session
            .telegram_user_id
            .is_some_and(|owner| Some(owner) != msg.user_id)
        {
            return Reply::Text(format::NOT_YOURS.into());
        }
        let command = match parsed {
            Ok(command) => command,
            Err(e) => return Reply::Text(e.to_string()),
        };
        tracing::info!(command = ?command, sub = %session.sub, "telegram command");
        match self
            .run(command, msg.chat_id, &session, correlation_id)
            .await
        {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(error = %e, "command failed");
                Reply::Text(format::api_error(&e))
            }
        }
    }

    /// `/link <code>`: in a private chat, or explicitly in a group, whose commands the bot then takes only from the
    /// user who linked it.
    async fn link(&self, msg: &Incoming, code: &str, correlation_id: &str) -> String {
        match self
            .api
            .redeem(
                code,
                msg.chat_id,
                (msg.user_id, msg.username.as_deref()),
                correlation_id,
            )
            .await
        {
            Ok(()) => {
                "Linked: this chat now acts for your STROM user. Send /help for the commands."
                    .into()
            }
            Err(e) if e.code() == Some("link_code_invalid") || e.status() == Some(422) => {
                "That code is unknown, already used or expired. Create a new one in the dashboard."
                    .into()
            }
            Err(e) if e.status() == Some(429) => {
                "Too many wrong codes from this chat; try again in 10 minutes.".into()
            }
            Err(e) => {
                tracing::warn!(error = %e, "link failed");
                format::api_error(&e)
            }
        }
    }

    async fn resolve(
        &self,
        token: &str,
        query: &str,
        correlation_id: &str,
    ) -> Result<Result<Agent, String>, ApiError> {
        let agents = self.api.agents(token, correlation_id).await?;
        Ok(format::resolve(&agents, query).cloned())
    }

    /// The agent `query` names, or the only agent when there is no query.
    async fn one_agent(
        &self,
        token: &str,
        query: Option<&str>,
        correlation_id: &str,
    ) -> Result<Result<Agent, String>, ApiError> {
        match query {
            Some(q) => self.resolve(token, q, correlation_id).await,
            None => {
                let agents = self.api.agents(token, correlation_id).await?;
                Ok(match agents.as_slice() {
                    [one] => Ok(one.clone()),
                    [] => Err("You have no agents yet; create one in the dashboard.".into()),
                    _ => Err(format!(
                        "You have {} agents; name one (by name or id prefix). /agents lists them.",
                        agents.len()
                    )),
                })
            }
        }
    }

    async fn run(
        &self,
        command: Command,
        chat_id: i64,
        session: &Session,
        cid: &str,
    ) -> Result<Reply, ApiError> {
        let token = session.access_token.as_str();
        let text = match command {
            Command::Help => command::HELP.to_owned(),
            Command::Link(_) => unreachable!("handled before the session"),
            Command::Unlink => {
                self.api.unlink(token, chat_id, cid).await?;
                self.forget(chat_id);
                "Unlinked. This chat no longer acts for your STROM user.".to_owned()
            }
            Command::Agents | Command::Status(None) => {
                format::agents(&self.api.agents(token, cid).await?)
            }
            Command::Status(Some(query)) => match self.resolve(token, &query, cid).await? {
                Ok(agent) => format::status(&agent),
                Err(answer) => answer,
            },
            Command::Pnl(query) => match self.one_agent(token, query.as_deref(), cid).await? {
                Ok(agent) => {
                    let summary = self.api.summary(token, &agent.agent_id, cid).await?;
                    format::pnl(&agent, &summary)
                }
                Err(answer) => answer,
            },
            Command::Trades(query, n) => {
                match self.one_agent(token, query.as_deref(), cid).await? {
                    Ok(agent) => {
                        let trades = self.api.trades(token, &agent.agent_id, n, cid).await?;
                        format::trades(&agent, &trades)
                    }
                    Err(answer) => answer,
                }
            }
            Command::Positions => {
                let agents = self.api.agents(token, cid).await?;
                let mut rows = Vec::with_capacity(agents.len());
                for agent in agents {
                    let position = self.api.position(token, &agent.agent_id, cid).await?;
                    rows.push((agent, position));
                }
                format::positions(&rows)
            }
            Command::Daily(days) => {
                let now = Utc::now();
                let window_start = (now.date_naive() - chrono::Days::new(u64::from(days - 1)))
                    .and_hms_opt(0, 0, 0)
                    .map_or(now, |t| t.and_utc());
                let mut per_agent = Vec::new();
                for agent in self.api.agents(token, cid).await? {
                    let baseline = self
                        .api
                        .pnl_at(
                            token,
                            &agent.agent_id,
                            window_start - ChronoDuration::milliseconds(1),
                            cid,
                        )
                        .await?
                        .unwrap_or_default();
                    let points = self
                        .api
                        .pnl_since(token, &agent.agent_id, window_start, cid)
                        .await?;
                    per_agent.push(format::daily_changes(&points, baseline));
                }
                format::daily(days, now, &per_agent)
            }
            Command::Notify(None) => self.notifications(chat_id),
            Command::Notify(Some((query, on))) => match self.resolve(token, &query, cid).await? {
                Ok(agent) => self.notify(chat_id, agent, on),
                Err(answer) => answer,
            },
            Command::Start(query) => match self.resolve(token, &query, cid).await? {
                Ok(agent) => {
                    let started = self.api.start(token, &agent.agent_id, cid).await?;
                    format!(
                        "Started {} ({}): {}.",
                        started.name,
                        format::short_id(&started.agent_id),
                        started.status
                    )
                }
                Err(answer) => answer,
            },
            Command::Stop(query) => match self.resolve(token, &query, cid).await? {
                Ok(agent) => {
                    return Ok(Reply::ConfirmStop {
                        text: format!(
                            "Stop {} ({}) on {}? It is {}.",
                            agent.name,
                            format::short_id(&agent.agent_id),
                            agent.symbol,
                            agent.status
                        ),
                        agent_id: agent.agent_id,
                    })
                }
                Err(answer) => answer,
            },
        };
        Ok(Reply::Text(text))
    }

    /// The answer to a button press with callback `data` in `chat_id`: the text that replaces the question.
    pub async fn on_button(
        &self,
        chat_id: i64,
        user_id: Option<i64>,
        data: &str,
        correlation_id: &str,
    ) -> String {
        let session = match self.api.session(chat_id, correlation_id).await {
            Ok(Some(session)) => session,
            Ok(None) => return format::NOT_LINKED.into(),
            Err(e) => return format::api_error(&e),
        };
        if session
            .telegram_user_id
            .is_some_and(|owner| Some(owner) != user_id)
        {
            return format::NOT_YOURS.into();
        }
        if data == CANCEL {
            return "Cancelled; nothing was stopped.".into();
        }
        let Some(agent_id) = data.strip_prefix(STOP_PREFIX) else {
            return "That button is not one of mine.".into();
        };
        tracing::info!(agent_id, sub = %session.sub, "telegram stop confirmed");
        match self
            .api
            .stop(&session.access_token, agent_id, correlation_id)
            .await
        {
            Ok(agent) => format!(
                "Stopped {} ({}).",
                agent.name,
                format::short_id(&agent.agent_id)
            ),
            Err(e) => format::api_error(&e),
        }
    }
}

/// How to reach Telegram and the STROM API.
pub struct Config {
    /// The bot token from BotFather (a secret: never logged).
    pub telegram_token: String,
    /// Another Bot API server (a local one, or a test's); `None` = Telegram's.
    pub telegram_api_url: Option<String>,
    /// The STROM API, e.g. `http://127.0.0.1:8080`.
    pub api_url: String,
    /// The bot's service credential (role `telegram-bot`; a secret).
    pub service_token: String,
    /// Where the `/notify` subscriptions are kept across restarts (`None`: in memory only).
    pub state_file: Option<std::path::PathBuf>,
}

/// A fresh correlation id for one update: it goes to the API as `x-request-id` and into the bot's log.
pub fn correlation_id() -> String {
    format!("tg-{}", uuid::Uuid::new_v4())
}

fn stop_keyboard(agent_id: &str) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new(vec![vec![
        InlineKeyboardButton::callback("Stop", format!("{STOP_PREFIX}{agent_id}")),
        InlineKeyboardButton::callback("Cancel", CANCEL),
    ]])
}

type HandlerResult = Result<(), teloxide::RequestError>;

async fn handle_message(
    bot: teloxide::Bot,
    msg: Message,
    me: Me,
    core: Arc<Core>,
) -> HandlerResult {
    let cid = correlation_id();
    let span =
        tracing::info_span!("telegram_update", correlation_id = %cid, chat_id = msg.chat.id.0);
    async move {
        // `/cmd@otherbot` in a group is for another bot.
        let text = msg.text().map(str::to_owned);
        if let Some(t) = &text {
            if let Some(first) = t.split_whitespace().next() {
                if let Some((_, to)) = first.split_once('@') {
                    if !to.eq_ignore_ascii_case(me.username()) {
                        return Ok(());
                    }
                }
            }
        }
        let incoming = Incoming {
            chat_id: msg.chat.id.0,
            private: msg.chat.is_private(),
            username: msg.from.as_ref().and_then(|u| u.username.clone()),
            user_id: msg.from.as_ref().and_then(|u| i64::try_from(u.id.0).ok()),
            text: text.map(|t| strip_mention(&t, me.username())),
        };
        match core.on_message(&incoming, &cid).await {
            Reply::Silent => {}
            Reply::Text(text) => {
                bot.send_message(msg.chat.id, format::fit(text)).await?;
            }
            Reply::ConfirmStop { text, agent_id } => {
                bot.send_message(msg.chat.id, format::fit(text))
                    .reply_markup(stop_keyboard(&agent_id))
                    .await?;
            }
        }
        tracing::info!("telegram update handled");
        Ok(())
    }
    .instrument(span)
    .await
}

/// `/cmd@bot args` → `/cmd args`.
fn strip_mention(text: &str, username: &str) -> String {
    let suffix = format!("@{username}");
    let trimmed = text.trim_start();
    match trimmed.split_once(char::is_whitespace) {
        Some((head, rest)) => format!(
            "{} {rest}",
            head.strip_suffix(suffix.as_str()).unwrap_or(head)
        ),
        None => trimmed
            .strip_suffix(suffix.as_str())
            .unwrap_or(trimmed)
            .to_owned(),
    }
}

async fn handle_callback(bot: teloxide::Bot, q: CallbackQuery, core: Arc<Core>) -> HandlerResult {
    let cid = correlation_id();
    let Some(message) = q.regular_message().cloned() else {
        bot.answer_callback_query(q.id.clone()).await?;
        return Ok(());
    };
    let span =
        tracing::info_span!("telegram_update", correlation_id = %cid, chat_id = message.chat.id.0);
    async move {
        bot.answer_callback_query(q.id.clone()).await?;
        let text = core
            .on_button(
                message.chat.id.0,
                i64::try_from(q.from.id.0).ok(),
                q.data.as_deref().unwrap_or(""),
                &cid,
            )
            .await;
        bot.edit_message_text(message.chat.id, message.id, format::fit(text))
            .reply_markup(InlineKeyboardMarkup::default())
            .await?;
        tracing::info!("telegram button handled");
        Ok(())
    }
    .instrument(span)
    .await
}

/// Runs the bot with long polling until `shutdown` completes.
///
/// # Errors
/// The clients cannot be built, or Telegram refuses the token (`getMe` fails).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut bot = teloxide::Bot::new(config.telegram_token);
    if let Some(url) = config.telegram_api_url {
        let url = reqwest::Url::parse(&url)
            .with_context(|| format!("STROM_TELEGRAM_API_URL {url:?} is not a URL"))?;
        bot = bot.set_api_url(url);
    }
    let store = match &config.state_file {
        Some(path) => NotificationStore::open(path)?,
        None => NotificationStore::in_memory(),
    };
    let (core, mut outbox) = Core::new(
        ApiClient::new(&config.api_url, config.service_token)?,
        Arc::new(store),
    );
    let core = Arc::new(core);
    core.restore();
    let sender = bot.clone();
    tokio::spawn(async move {
        while let Some((chat_id, text)) = outbox.recv().await {
            if let Err(e) = sender
                .send_message(teloxide::types::ChatId(chat_id), format::fit(text))
                .await
            {
                tracing::warn!(error = %e, chat_id, "notification not delivered");
            }
        }
    });
    let handler = teloxide::dptree::entry()
        .branch(Update::filter_message().endpoint(handle_message))
        .branch(Update::filter_callback_query().endpoint(handle_callback));
    let mut dispatcher = Dispatcher::builder(bot.clone(), handler)
        .dependencies(teloxide::dptree::deps![core])
        .default_handler(|_| async {})
        .build();
    let token = dispatcher.shutdown_token();
    tokio::spawn(async move {
        shutdown.await;
        // The dispatcher may still be starting (getMe); try until it takes the request.
        loop {
            match token.shutdown() {
                Ok(done) => {
                    done.await;
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let listener = teloxide::update_listeners::polling_default(bot).await;
    tracing::info!("telegram bot polling for updates");
    dispatcher
        .try_dispatch_with_listener(
            listener,
            LoggingErrorHandler::with_custom_text("telegram update listener failed"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("the Telegram Bot API refused the bot (getMe failed): {e}"))?;
    tracing::info!("telegram bot stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_of_this_bot_are_stripped() {
        assert_eq!(
            strip_mention("/pnl@strom_bot alpha", "strom_bot"),
            "/pnl alpha"
        );
        assert_eq!(strip_mention("/agents@strom_bot", "strom_bot"), "/agents");
        assert_eq!(strip_mention("/agents", "strom_bot"), "/agents");
    }

    #[test]
    fn a_chat_gets_a_burst_of_five_then_one_per_second() {
        let (core, _) = Core::new(
            ApiClient::new("http://127.0.0.1:9", "t".into()).unwrap(),
            Arc::new(NotificationStore::in_memory()),
        );
        for _ in 0..5 {
            assert!(core.admit(1));
        }
        assert!(!core.admit(1), "the sixth at once is refused");
        assert!(core.admit(2), "other chats have their own bucket");
    }

    #[tokio::test]
    async fn an_unreachable_api_is_answered_politely() {
        // Port 9 (discard) is closed on test machines: the connection is refused at once.
        let (core, _) = Core::new(
            ApiClient::new("http://127.0.0.1:9", "t".into()).unwrap(),
            Arc::new(NotificationStore::in_memory()),
        );
        let msg = Incoming {
            chat_id: 1,
            private: true,
            username: None,
            user_id: Some(1),
            text: Some("/agents".into()),
        };
        assert_eq!(
            core.on_message(&msg, "tg-test").await,
            Reply::Text(format::API_DOWN.into())
        );
        let group_chatter = Incoming {
            private: false,
            text: Some("hello all".into()),
            ..msg
        };
        assert_eq!(
            core.on_message(&group_chatter, "tg-test").await,
            Reply::Silent
        );
    }
}
