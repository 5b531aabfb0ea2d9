//! Registration and login on one connection.
//!
//! Both run in the connection's own task: the expensive part, Argon2id, runs on the hashing threads of the
//! [`PasswordService`](crate::password::PasswordService), so a class logging in at once queues for them instead of
//! stalling the runtime.
//!
//! The order of checks is chosen so that cheap refusals come first and the expensive hash runs only for requests
//! that could succeed, and so that nothing reveals whether an account exists: an unknown name and a wrong password
//! get the same `BadCredentials` after the same amount of work (a dummy verification for the unknown name).
//!
//! A login first reserves its place in the failure limits ([`crate::admission::login`]): a wrong password keeps
//! the tokens spent, anything else gives them back. A right password whose stored hash has outdated Argon2
//! parameters gets its hash replaced by one with the current parameters.

use std::sync::Arc;
use std::time::Instant;

use chatlab_proto::chat::Username;
use chatlab_proto::control::{ErrorCode, Password, ServerMessage};
use tokio::sync::{mpsc, oneshot};

use super::{Connection, End, Flow, LiveSession};
use crate::admission::{Phase, Wait};
use crate::clock::utc_now_ms;
use crate::hub::input::{HubInput, LoginRequest};
use crate::limits::CONTROL_QUEUE_DEPTH;
use crate::password::Verified;
use crate::storage::{StorageError, UserRecord};

impl Connection {
    pub(super) async fn register(&mut self, username: &str, password: &Password) -> Flow {
        let name = match Username::parse(username) {
            Ok(name) => name,
            Err(error) => {
                self.refuse(None, ErrorCode::UsernameInvalid, error.to_string());
                return Ok(());
            }
        };
        if let Err(error) = password.check() {
            self.refuse(None, ErrorCode::PasswordInvalid, error.to_string());
            return Ok(());
        }
        if let Err(Wait(wait)) = self.context.admission.registration_allowed(self.peer.ip(), Instant::now()) {
            self.refuse(
                None,
                ErrorCode::LoginRateLimited,
                format!("too many registrations from this address; try again in {} s", wait.as_secs()),
            );
            return Ok(());
        }
        match self.find_user(&name).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                self.refuse(None, ErrorCode::UsernameTaken, format!("the name {name} is already registered"));
                return Ok(());
            }
            Err(error) => return self.internal("could not look up a user", &error),
        }
        let phc = match self.context.passwords.hash(password.expose().to_owned()).await {
            Ok(phc) => phc,
            Err(error) => return self.internal("could not hash a password", &error),
        };
        let storage = Arc::clone(&self.context.storage);
        let stored_name = name.as_str().to_owned();
        let created = tokio::task::spawn_blocking(move || storage.create_user(&stored_name, &phc, utc_now_ms())).await;
        match created {
            Ok(Ok(_)) => {
                tracing::info!(peer = %self.peer, user = %name, "account registered");
                self.queue(&ServerMessage::Registered { username: name });
            }
            // Two registrations of one name raced; the database kept the first.
            Ok(Err(StorageError::UsernameTaken)) => {
                self.refuse(None, ErrorCode::UsernameTaken, format!("the name {name} is already registered"));
            }
            Ok(Err(error)) => return self.internal("could not create an account", &error),
            Err(error) => return self.internal("account creation stopped", &error),
        }
        Ok(())
    }

    pub(super) async fn login(&mut self, username: &str, password: &Password) -> Flow {
        if self.session.is_some() {
            self.refuse(None, ErrorCode::AlreadyLoggedIn, "this connection is already logged in; log out first");
            return Ok(());
        }
        let name = match Username::parse(username) {
            Ok(name) => name,
            Err(error) => {
                self.refuse(None, ErrorCode::UsernameInvalid, error.to_string());
                return Ok(());
            }
        };
        let admission = Arc::clone(&self.context.admission);
        // Reserve the attempt before the password check, so parallel attempts cannot all pass a check that only
        // looked at the bucket. Attempts that find every token reserved by others in flight wait here for them.
        let reservation = match admission.reserve_login(name.as_str(), self.peer.ip()).await {
            Ok(reservation) => reservation,
            Err(Wait(wait)) => {
                self.refuse(
                    None,
                    ErrorCode::LoginRateLimited,
                    format!("too many failed logins; try again in {} s", wait.as_secs()),
                );
                return Ok(());
            }
        };
        let verified = if password.check().is_err() {
            // No stored password is empty or longer than the limit: wrong without hashing.
            Ok(None)
        } else {
            match self.find_user(&name).await {
                Ok(record) => {
                    let phc = record.as_ref().map(|r| r.password_phc.clone());
                    match self.context.passwords.verify(password.expose().to_owned(), phc).await {
                        Ok(Verified::Correct { rehashed }) => Ok(record.map(|record| (record, rehashed))),
                        Ok(Verified::Wrong) => Ok(None),
                        Err(error) => Err(error.to_string()),
                    }
                }
                Err(error) => Err(error),
            }
        };
        let (record, rehashed) = match verified {
            Ok(Some(found)) => found,
            Ok(None) => {
                reservation.failed();
                self.refuse(None, ErrorCode::BadCredentials, "unknown user name or wrong password");
                return Ok(());
            }
            Err(error) => {
                // Not the client's failure: dropping the reservation gives its tokens back.
                drop(reservation);
                return self.internal("could not check a password", &error);
            }
        };
        drop(reservation);
        if let Some(phc) = rehashed {
            self.store_upgraded_hash(&record, phc).await;
        }
        self.open_session(name, record).await
    }

    /// Replaces `record`'s stored hash by `phc`, the same password hashed with the current parameters. A failure
    /// is logged and otherwise ignored: the old hash still works, and the next login tries again.
    async fn store_upgraded_hash(&self, record: &UserRecord, phc: String) {
        let storage = Arc::clone(&self.context.storage);
        let user = record.id;
        match tokio::task::spawn_blocking(move || storage.update_password_hash(user, &phc)).await {
            Ok(Ok(())) => {
                let params = self.context.passwords.params();
                tracing::info!(
                    peer = %self.peer,
                    user = %record.name,
                    memory_kib = params.memory_kib,
                    iterations = params.iterations,
                    "password hash upgraded to the current Argon2 parameters"
                );
            }
            Ok(Err(error)) => tracing::warn!(user = %record.name, %error, "could not store an upgraded password hash"),
            Err(error) => tracing::warn!(user = %record.name, %error, "storing an upgraded password hash stopped"),
        }
    }

    /// Asks the hub for a session; the hub queues the `SessionGrant` as the session's first message.
    async fn open_session(&mut self, name: Username, record: UserRecord) -> Flow {
        let (out, queue) = mpsc::channel(CONTROL_QUEUE_DEPTH);
        let (reply, answer) = oneshot::channel();
        let request = LoginRequest {
            user: name.clone(),
            user_id: record.id,
            peer: self.peer,
            out,
            kill: Arc::clone(&self.kill),
            reply,
        };
        self.tell_hub(HubInput::Login(request)).await?;
        match answer.await {
            Ok(Ok(session)) => {
                self.session = Some(LiveSession::new(session, name, record.id, queue));
                self.channel.set_logged_in(true);
                self.slot.set_phase(Phase::LoggedIn);
                // The session's silence is counted from its start, not from the login frame (hashing takes time).
                self.idle.heard(tokio::time::Instant::now());
                Ok(())
            }
            Ok(Err(refusal)) => {
                self.refuse(None, refusal.code, refusal.message);
                Ok(())
            }
            Err(_) => Err(End::HubGone),
        }
    }

    async fn find_user(&self, name: &Username) -> Result<Option<UserRecord>, String> {
        let storage = Arc::clone(&self.context.storage);
        let name = name.as_str().to_owned();
        match tokio::task::spawn_blocking(move || storage.find_user(&name)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Answers `Internal` for a failure of the server itself, logged as an error (not the client's fault).
    pub(super) fn internal(&mut self, what: &str, error: &dyn std::fmt::Display) -> Flow {
        tracing::error!(peer = %self.peer, %error, "{what}");
        self.queue(&ServerMessage::Error {
            req: None,
            code: ErrorCode::Internal,
            message: "the server hit an internal error; please try again".into(),
        });
        Ok(())
    }
}
