//! One-time sign-in links for dev mode: `strom serve` prints a link to the dashboard whose code, redeemed once at
//! `POST /api/v1/auth/dev-sign-in`, gives the demo user a dev token (the way Jupyter prints its login link), so a
//! newcomer who ran `make run` is one click from the dashboard. specs/05 §1.
//!
//! A code is 32 random bytes (hex), kept only as its SHA-256 in memory, redeemable once and for
//! [`DEV_SIGN_IN_TTL_S`]; it travels in the link's fragment (`/sign-in#code=…`), which browsers never send to the
//! server, so it is not in any access log. A restart forgets every code (print a new one by restarting, or use
//! `strom token`).

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::auth::Role;

/// How long a printed link works.
pub const DEV_SIGN_IN_TTL_S: i64 = 15 * 60;
/// Random bytes in a code (hex-encoded: 64 characters).
const CODE_BYTES: usize = 32;

/// Who a redeemed code signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub sub: String,
    pub roles: Vec<Role>,
}

struct Pending {
    hash: [u8; 32],
    sign_in: SignIn,
    expires_at: DateTime<Utc>,
}

/// The codes issued and not yet redeemed or expired.
#[derive(Default)]
pub struct DevSignIn {
    pending: Mutex<Vec<Pending>>,
}

fn hash(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

impl DevSignIn {
    /// A new code signing in `sub` with `roles`, valid [`DEV_SIGN_IN_TTL_S`] from `now`.
    pub fn issue(&self, sub: &str, roles: &[Role], now: DateTime<Utc>) -> String {
        let bytes: [u8; CODE_BYTES] = rand::random();
        let code = hex::encode(bytes);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|p| p.expires_at > now);
        pending.push(Pending {
            hash: hash(&code),
            sign_in: SignIn {
                sub: sub.to_owned(),
                roles: roles.to_vec(),
            },
            expires_at: now + Duration::seconds(DEV_SIGN_IN_TTL_S),
        });
        code
    }

    /// Who `code` signs in, once: a used, expired or unknown code is `None`.
    pub fn redeem(&self, code: &str, now: DateTime<Utc>) -> Option<SignIn> {
        let wanted = hash(code.trim());
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|p| p.expires_at > now);
        let index = pending.iter().position(|p| p.hash == wanted)?;
        Some(pending.swap_remove(index).sign_in)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(1_800_000_000 + s)
    }

    #[test]
    fn a_code_signs_in_once_until_it_expires() {
        let links = DevSignIn::default();
        let code = links.issue("demo", &[Role::Trader], at(0));
        assert_eq!(code.len(), 2 * CODE_BYTES);
        let expected = SignIn {
            sub: "demo".into(),
            roles: vec![Role::Trader],
        };
        assert_eq!(links.redeem(&code, at(10)), Some(expected));
        assert_eq!(links.redeem(&code, at(11)), None, "used");
        let late = links.issue("demo", &[Role::Trader], at(0));
        assert_eq!(links.redeem(&late, at(DEV_SIGN_IN_TTL_S)), None, "expired");
        assert_eq!(links.redeem("not-a-code", at(1)), None);
        let other = links.issue("demo", &[Role::Viewer], at(0));
        assert_ne!(other, code);
    }
}
