//! Users: accounts, profiles and roles. Input is parsed at the edge into types that cannot be
//! wrong (`Email`, `Phone`, `Password`, `Name`).
pub mod entity;
pub mod graphql;
pub mod service;

use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

use crate::error::AppError;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
pub enum Role {
    #[sea_orm(string_value = "USER")]
    User,
    #[sea_orm(string_value = "ADMINISTRATOR")]
    Administrator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "USER",
            Role::Administrator => "ADMINISTRATOR",
        }
    }
}

/// A normalised (trimmed, lower-case) email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let s = raw.trim().to_lowercase();
        let invalid = || AppError::bad_input("email", "email address is not valid");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = s.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An Indonesian phone number, stored in E.164 form (`+62…`); `08…` is accepted and converted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let national = if let Some(rest) = compact.strip_prefix("+62") {
            rest.to_string()
        } else if let Some(rest) = compact.strip_prefix('0') {
            rest.to_string()
        } else {
            return Err(AppError::bad_input("phone", "phone must be an Indonesian number starting with +62 or 08"));
        };
        // Mobile numbers: 8xx followed by 7-10 more digits (+62 8xx-xxxx-xxxx).
        let ok = national.starts_with('8')
            && (9..=12).contains(&national.len())
            && national.chars().all(|c| c.is_ascii_digit());
        if !ok {
            return Err(AppError::bad_input(
                "phone",
                "phone must be an Indonesian mobile number such as +6281234567890 or 081234567890",
            ));
        }
        Ok(Self(format!("+62{national}")))
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A password that satisfies the length policy (8–128 characters).
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str, field: &'static str) -> Result<Self, AppError> {
        let n = raw.chars().count();
        if !(8..=128).contains(&n) {
            return Err(AppError::bad_input(field, "password must be 8 to 128 characters"));
        }
        Ok(Self(raw.to_string()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A display name: 1–100 characters after trimming.
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let s = raw.trim();
        let n = s.chars().count();
        if n == 0 || n > 100 || s.chars().any(|c| c.is_control()) {
            return Err(AppError::bad_input("name", "name must be 1 to 100 characters"));
        }
        Ok(Self(s.to_string()))
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_validated() {
        assert_eq!(Email::parse("  Budi@Example.COM ").unwrap().as_str(), "budi@example.com");
        for bad in ["", "budi", "budi@", "@example.com", "budi@example", "bu di@example.com", "a@b..com"] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn phones_are_indonesian_and_normalised() {
        assert_eq!(Phone::parse("081234567890").unwrap().into_inner(), "+6281234567890");
        assert_eq!(Phone::parse("+62 812-3456-7890").unwrap().into_inner(), "+6281234567890");
        for bad in ["12345", "+6512345678", "0212345678", "08123", "08123456789012345", "08abc4567890"] {
            assert!(Phone::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn password_length_policy() {
        assert!(Password::parse("short", "password").is_err());
        assert!(Password::parse(&"x".repeat(129), "password").is_err());
        assert!(Password::parse("long enough", "password").is_ok());
    }
}
