-- Telegram links (specs/02 §4, specs/05 §5): the Telegram user who linked the chat. A group chat is linked only
-- explicitly, with /link in the group, and the bot then obeys only that user there; in a private chat it is the
-- chat's own user. Null for a link made before this column existed (the bot then obeys the chat as before).
ALTER TABLE telegram_links ADD COLUMN telegram_user_id bigint NULL;
