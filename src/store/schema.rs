//! Table definitions, the same on every backend (see `migrations/`). Ids are 64-bit everywhere;
//! times are milliseconds since the Unix epoch.

diesel::table! {
    users (id) {
        id -> BigInt,
        /// As the user typed it at registration.
        username -> Text,
        /// Lowercased: usernames are unique and matched without regard to case.
        username_key -> Text,
        display_name -> Text,
        password_hash -> Text,
        disabled -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        /// SHA-256 of the bearer token, hex; the token itself is never stored.
        token_hash -> Text,
        user_id -> BigInt,
        created_at -> BigInt,
        last_used_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, sessions);

diesel::table! {
    messages (id) {
        id -> BigInt,
        from_id -> BigInt,
        /// The recipient, or 0 for the lobby.
        to_id -> BigInt,
        body -> Text,
        sent_at -> BigInt,
        /// When the recipient marked it read; lobby messages are never marked.
        read_at -> Nullable<BigInt>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(users, messages);

diesel::table! {
    calls (id) {
        /// A UUID.
        id -> Text,
        caller_id -> BigInt,
        callee_id -> BigInt,
        status -> Text,
        media_audio -> Bool,
        media_video -> Bool,
        created_at -> BigInt,
        answered_at -> Nullable<BigInt>,
        ended_at -> Nullable<BigInt>,
        duration_ms -> Nullable<BigInt>,
        end_reason -> Nullable<Text>,
        ended_by -> Nullable<BigInt>,
        caller_report -> Nullable<Text>,
        callee_report -> Nullable<Text>,
        failure_class -> Nullable<Text>,
        trace_parent -> Nullable<Text>,
    }
}

diesel::table! {
    server_settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    contacts (user_id, contact_id) {
        user_id -> BigInt,
        contact_id -> BigInt,
        /// Added by hand (`PUT /api/contacts/{id}`).
        added -> Bool,
        /// Called or chatted with; kept both ways and never removed.
        met -> Bool,
        created_at -> BigInt,
    }
}
