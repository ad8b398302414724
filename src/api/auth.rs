//! Bearer tokens and roles: who the caller is ([`Caller`]) and what each
//! role may do ([`allows`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use super::AppState;
use super::error::ApiError;
use crate::config::Role;

/// What a role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read runs and runbooks.
    Read,
    /// Read and verify the audit trail.
    Audit,
    /// Trigger a runbook of kind `drill`.
    TriggerDrill,
    /// Trigger any runbook.
    TriggerAny,
    /// Approve, reject and cancel.
    Operate,
}

/// The role table: viewer reads; auditor reads and audits; drill reads and
/// triggers drills; operator reads, triggers anything, approves and cancels;
/// admin does everything.
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission as P;
    match role {
        Role::Admin => true,
        Role::Operator => matches!(
            permission,
            P::Read | P::TriggerDrill | P::TriggerAny | P::Operate
        ),
        Role::Drill => matches!(permission, P::Read | P::TriggerDrill),
        Role::Auditor => matches!(permission, P::Read | P::Audit),
        Role::Viewer => matches!(permission, P::Read),
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token name, recorded as the actor.
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub(super) fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if allows(self.role, permission) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("role {} may not do this ({permission:?})", self.role),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>`"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let (name, role) = state
            .find_token(token.trim())
            .ok_or_else(|| unauthorized("unknown token"))?;
        Ok(Caller { name, role })
    }
}

/// Declares the bearer scheme in the OpenAPI document.
pub(super) struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
