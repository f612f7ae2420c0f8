//! Users: accounts, profiles and roles. Input is parsed at the edge into types that cannot be
//! wrong (`Email`, `Phone`, `Password`, `Name`).
pub mod admin;
pub mod admin_graphql;
pub mod entity;
pub mod graphql;
pub mod invitations;
pub mod service;

use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

use crate::{error::AppError, text};

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

/// A normalised email address: NFKC, lower-case, trimmed; the domain in its ASCII (IDNA) form.
/// Lookalikes are refused: invisible characters anywhere, and a local part or a domain label
/// whose letters mix scripts (`pаypal.com` with a Cyrillic `а`, also when sent as `xn--…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let invalid = || AppError::bad_input("email", "email address is not valid");
        // NFKC around the lower-casing: full-width `ＡＤＭＩＮ` and `admin` are one address.
        let s = text::nfkc(&text::nfkc(raw).to_lowercase());
        let s = s.trim();
        if s.chars().any(|c| c.is_whitespace() || text::is_invisible(c)) {
            return Err(AppError::bad_input("email", "email address must not contain spaces or invisible characters"));
        }
        let (local, domain) = s.split_once('@').ok_or_else(invalid)?;
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return Err(invalid());
        }
        if !text::is_single_script(local) {
            return Err(mixed_script());
        }
        let domain = parse_domain(domain)?;
        let email = format!("{local}@{domain}");
        if email.len() > 254 {
            return Err(invalid());
        }
        Ok(Self(email))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

fn mixed_script() -> AppError {
    AppError::bad_input("email", "email address must not mix scripts (such as Latin and Cyrillic) in one part")
}

/// An email domain in ASCII form. Internationalised labels are accepted in either form and
/// stored as `xn--…`, so both spellings are one account; each label must be one script.
fn parse_domain(domain: &str) -> Result<String, AppError> {
    let invalid = || AppError::bad_input("email", "email address is not valid");
    let ascii = if domain.is_ascii() {
        domain.to_string()
    } else {
        idna::domain_to_ascii_strict(domain).map_err(|_| invalid())?
    };
    let ok = ascii.contains('.')
        && !ascii.starts_with('.')
        && !ascii.ends_with('.')
        && !ascii.contains("..")
        && ascii.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !ok {
        return Err(invalid());
    }
    // Reserved (RFC 2606) and undeliverable; anonymized accounts get addresses there, so no
    // one can register one first and make an anonymization fail on the unique index.
    if ascii == "invalid" || ascii.ends_with(".invalid") {
        return Err(AppError::bad_input("email", "email addresses under .invalid cannot receive mail"));
    }
    for label in ascii.split('.') {
        if let Some(encoded) = label.strip_prefix("xn--") {
            let unicode = idna::punycode::decode_to_string(encoded).ok_or_else(invalid)?;
            // Only the canonical spelling: otherwise one domain would have two stored forms.
            if unicode.chars().any(text::is_invisible) || text::nfkc(&unicode.to_lowercase()) != unicode {
                return Err(invalid());
            }
            if !text::is_single_script(&unicode) {
                return Err(mixed_script());
            }
        }
    }
    Ok(ascii)
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

/// A display name: NFKC, runs of whitespace as one space, trimmed, 1–100 characters, and no
/// invisible characters (zero-width, bidi controls, fillers), so a name cannot pass for another.
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let normalised = text::nfkc(raw);
        if normalised.chars().any(|c| text::is_invisible(c) && !c.is_whitespace()) {
            return Err(AppError::bad_input("name", "name must not contain invisible or control characters"));
        }
        let s = normalised.split_whitespace().collect::<Vec<_>>().join(" ");
        let n = s.chars().count();
        if n == 0 || n > 100 {
            return Err(AppError::bad_input("name", "name must be 1 to 100 characters"));
        }
        Ok(Self(s))
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
        for bad in [
            "",
            "budi",
            "budi@",
            "@example.com",
            "budi@example",
            "bu di@example.com",
            "a@b..com",
            "deleted-1@anonymized.invalid",
            "x@INVALID.invalid",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn lookalike_emails_are_normalised_or_refused() {
        // Compatibility forms fold into the plain address.
        assert_eq!(Email::parse("ＡＤＭＩＮ@ｅｘａｍｐｌｅ.ｃｏｍ").unwrap().as_str(), "admin@example.com");
        // Internationalised domains: one stored form for both spellings.
        assert_eq!(Email::parse("budi@Bücher.example").unwrap().as_str(), "budi@xn--bcher-kva.example");
        assert_eq!(Email::parse("budi@xn--bcher-kva.example").unwrap().as_str(), "budi@xn--bcher-kva.example");
        for bad in [
            "admin\u{200b}@example.com",
            "ad\u{200d}min@example.com",
            "admin@exa\u{200c}mple.com",
            "\u{202e}moc.elpmaxe@nimda",
            "admin\u{2066}@example.com",
            "admin\u{ad}@example.com",
            "admin\u{feff}@example.com",
            "admin\u{3164}@example.com",
        ] {
            let e = Email::parse(bad).unwrap_err();
            assert!(e.to_string().contains("invisible") || e.to_string().contains("not valid"), "{bad:?}: {e}");
        }
        // Mixed-script labels (Cyrillic а in a Latin word), in Unicode and in punycode.
        for mixed in ["budi@pаypal.com", "budi@xn--pypal-4ve.com", "аdmin@example.com"] {
            assert!(Email::parse(mixed).unwrap_err().to_string().contains("mix scripts"), "{mixed}");
        }
        assert!(Email::parse("budi@пример.рф").is_ok());
    }

    #[test]
    fn names_are_normalised_and_visible() {
        assert_eq!(Name::parse("  Budi \u{a0}\u{3000} Santoso ").unwrap().into_inner(), "Budi Santoso");
        assert_eq!(Name::parse("Ｂｕｄｉ").unwrap().into_inner(), "Budi");
        for bad in ["Bu\u{200b}di", "\u{202e}idub", "Budi\u{2067}", "\u{3164}", "Bu\u{0}di", "Budi\u{fe0f}"] {
            assert!(Name::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Name::parse("Siti Nurhaliza 日本 Ñandú").is_ok());
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
