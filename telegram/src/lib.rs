//! STROM Telegram bot (talks to the REST API only). Arrives with M2.
