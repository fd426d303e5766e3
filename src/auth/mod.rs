//! Accounts' secrets: password hashing, session tokens, and the failed-login limiter.
//! Shared by the HTTP handlers and the operator CLI; knows nothing of HTTP or SQL.

pub mod limiter;
pub mod password;
pub mod token;

/// Why a username, display name or password is refused; `code` is PROTOCOL.md's error name.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: &'static str,
}

/// 3 to 32 of `[A-Za-z0-9_.-]` (PROTOCOL.md section 2).
pub fn check_username(username: &str) -> Result<(), Invalid> {
    let ok = (3..=32).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Invalid { code: "invalid_username", message: "a username is 3 to 32 letters, digits, '_', '.' or '-'" })
    }
}

pub const MAX_PASSWORD_CHARS: usize = 1024;

/// At least 8 characters; at most 1024, so hashing stays cheap (characters, not bytes: the
/// limit the API's description states is the one enforced).
pub fn check_password(password: &str) -> Result<(), Invalid> {
    let chars = password.chars().count();
    if chars < 8 {
        return Err(Invalid { code: "weak_password", message: "a password needs at least 8 characters" });
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(Invalid { code: "password_too_long", message: "a password may have at most 1024 characters" });
    }
    Ok(())
}

/// Trims a display name and checks it: 1 to 64 characters, no control characters.
pub fn clean_display_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    let count = name.chars().count();
    if count == 0 || count > 64 || name.chars().any(char::is_control) {
        return Err(Invalid {
            code: "invalid_display_name",
            message: "a display name is 1 to 64 characters, without control characters",
        });
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(check_username("al").is_err());
        assert!(check_username("alice").is_ok());
        assert!(check_username("a.b-c_d").is_ok());
        assert!(check_username(&"a".repeat(32)).is_ok());
        assert!(check_username(&"a".repeat(33)).is_err());
        assert!(check_username("ali ce").is_err());
        assert!(check_username("alïce").is_err());
        assert!(check_username("' OR 1=1 --").is_err());
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert_eq!(check_password("1234567").unwrap_err().code, "weak_password");
        assert!(check_password("12345678").is_ok());
        assert!(check_password("密码密码密码密码").is_ok());
        assert_eq!(check_password(&"x".repeat(1025)).unwrap_err().code, "password_too_long");
        assert!(check_password(&"é".repeat(1024)).is_ok(), "characters are counted, not bytes");
    }

    #[test]
    fn display_names() {
        assert_eq!(clean_display_name("  Alice  ").unwrap(), "Alice");
        assert_eq!(clean_display_name("王小明 🎉").unwrap(), "王小明 🎉");
        assert!(clean_display_name("   ").is_err());
        assert!(clean_display_name("a\u{0}b").is_err());
        assert!(clean_display_name(&"é".repeat(65)).is_err());
    }
}
