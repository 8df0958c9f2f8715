//! One error type for every HTTP handler: a status and a message, answered as
//! `{"error": "…"}`. Library errors map to their status here, once, so a handler only says `?`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::knowledge::KnowledgeError;

#[derive(Debug)]
pub struct ServerError {
    pub status: StatusCode,
    pub message: String,
}

impl ServerError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ServerError {
        ServerError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ServerError {
        ServerError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ServerError {
        ServerError::new(StatusCode::NOT_FOUND, message)
    }

    /// Something on our side failed (a worker panicked, the database said no).
    pub fn internal(e: impl std::fmt::Display) -> ServerError {
        ServerError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<KnowledgeError> for ServerError {
    fn from(e: KnowledgeError) -> ServerError {
        let status = match &e {
            KnowledgeError::UnknownShop(_) | KnowledgeError::UnknownEntry { .. } => {
                StatusCode::NOT_FOUND
            }
            KnowledgeError::InvalidShop(_) | KnowledgeError::UnknownFormat(_) => {
                StatusCode::BAD_REQUEST
            }
            KnowledgeError::Import { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ServerError::new(status, e.to_string())
    }
}

impl From<crate::store::StoreError> for ServerError {
    fn from(e: crate::store::StoreError) -> ServerError {
        ServerError::internal(e)
    }
}

impl From<crate::dialog::DialogError> for ServerError {
    fn from(e: crate::dialog::DialogError) -> ServerError {
        ServerError::internal(e)
    }
}

impl From<crate::nlu::NluError> for ServerError {
    fn from(e: crate::nlu::NluError) -> ServerError {
        ServerError::internal(e)
    }
}

impl From<tokio::task::JoinError> for ServerError {
    fn from(e: tokio::task::JoinError) -> ServerError {
        ServerError::internal(e)
    }
}
