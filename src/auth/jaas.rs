//! The JAAS login configuration file, as Java's `ConfigFile` reads it, for
//! the one thing a ZooKeeper server takes from it: the `Server` section's
//! login module options, whose `user_NAME="password"` entries are the
//! DIGEST-MD5 users (ZooKeeper's `SaslServerCallbackHandler`).
//!
//! The grammar is small and fixed: sections `Name { entries };`, each entry
//! `module.Class flag key=value ... ;` with values quoted or bare, and `//`,
//! `/* */` and `#` comments. It is parsed from text (the caller reads the
//! file) into plain data, and every error names the line, so an operator can
//! fix the file from the message alone. Values are kept exactly; nothing here
//! logs or prints them, since they are passwords.

use thiserror::Error;

/// A JAAS file larger than this is refused: real ones are a few hundred
/// bytes, and the whole file is held in memory.
pub const JAAS_FILE_BYTES_MAX: usize = 1 << 20;

/// How a login module's result counts (JAAS `LoginModuleControlFlag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlFlag {
    Required,
    Requisite,
    Sufficient,
    Optional,
}

/// One login module line of a section.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    pub flag: ControlFlag,
    /// Options in file order; a later duplicate key replaces an earlier one
    /// when looked up, as Java's option map does.
    pub options: Vec<(String, String)>,
}

impl std::fmt::Debug for LoginModule {
    // Options hold passwords: only their keys are shown.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(key, _)| key.as_str()).collect();
        formatter
            .debug_struct("LoginModule")
            .field("class", &self.class)
            .field("flag", &self.flag)
            .field("option_keys", &keys)
            .finish()
    }
}

/// A named section (`Server`, `Client`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub modules: Vec<LoginModule>,
}

/// A parsed JAAS file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JaasFile {
    pub sections: Vec<Section>,
}

impl JaasFile {
    /// The section with this name; Java matches names exactly, and a later
    /// section of the same name adds its modules to the earlier one.
    pub fn section(&self, name: &str) -> Option<Section> {
        let mut found: Option<Section> = None;
        for section in self.sections.iter().filter(|section| section.name == name) {
            match &mut found {
                Some(merged) => merged.modules.extend(section.modules.iter().cloned()),
                None => found = Some(section.clone()),
            }
        }
        found
    }
}

/// What is wrong with a JAAS file, and on which line (1-based).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum JaasError {
    #[error("line {line}: expected {expected}, found {found}")]
    Unexpected { line: usize, expected: &'static str, found: String },
    #[error("line {line}: unterminated quoted value")]
    UnterminatedQuote { line: usize },
    #[error("line {line}: unterminated /* comment")]
    UnterminatedComment { line: usize },
    #[error("line {line}: unknown control flag {flag:?} (expected required, requisite, sufficient or optional)")]
    UnknownFlag { line: usize, flag: String },
    #[error("the file is {bytes} bytes, more than the {max} a JAAS file may have")]
    TooLarge { bytes: usize, max: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Symbol(char),
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(word) => format!("{word:?}"),
            // A quoted value may be a password: never echo it.
            Token::Quoted(_) => "a quoted value".to_string(),
            Token::Symbol(symbol) => format!("'{symbol}'"),
            Token::End => "the end of the file".to_string(),
        }
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer { chars: text.chars().peekable(), line: 1 }
    }

    fn bump(&mut self) -> Option<char> {
        let next = self.chars.next();
        if next == Some('\n') {
            self.line += 1;
        }
        next
    }

    /// The next token and the line it starts on.
    fn next_token(&mut self) -> Result<(Token, usize), JaasError> {
        loop {
            match self.chars.peek().copied() {
                None => return Ok((Token::End, self.line)),
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('#') => self.skip_line(),
                Some('/') => {
                    let line = self.line;
                    self.bump();
                    match self.chars.peek().copied() {
                        Some('/') => self.skip_line(),
                        Some('*') => {
                            self.bump();
                            let mut previous = '\0';
                            loop {
                                let Some(c) = self.bump() else {
                                    return Err(JaasError::UnterminatedComment { line });
                                };
                                if previous == '*' && c == '/' {
                                    break;
                                }
                                previous = c;
                            }
                        }
                        _ => return Ok((Token::Symbol('/'), line)),
                    }
                }
                Some('"') => {
                    let line = self.line;
                    self.bump();
                    let mut value = String::new();
                    loop {
                        match self.bump() {
                            None => return Err(JaasError::UnterminatedQuote { line }),
                            Some('"') => return Ok((Token::Quoted(value), line)),
                            Some('\\') => match self.bump() {
                                None => return Err(JaasError::UnterminatedQuote { line }),
                                Some(escaped) => value.push(escaped),
                            },
                            Some(c) => value.push(c),
                        }
                    }
                }
                Some(c @ ('{' | '}' | ';' | '=')) => {
                    self.bump();
                    return Ok((Token::Symbol(c), self.line));
                }
                Some(_) => {
                    let line = self.line;
                    let mut word = String::new();
                    while let Some(&c) = self.chars.peek() {
                        if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '=' | '"') {
                            break;
                        }
                        word.push(c);
                        self.bump();
                    }
                    return Ok((Token::Word(word), line));
                }
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }
}

/// Parses the text of a JAAS file.
pub fn parse(text: &str) -> Result<JaasFile, JaasError> {
    if text.len() > JAAS_FILE_BYTES_MAX {
        return Err(JaasError::TooLarge { bytes: text.len(), max: JAAS_FILE_BYTES_MAX });
    }
    let mut lexer = Lexer::new(text);
    let mut file = JaasFile::default();
    let unexpected = |line, expected, found: &Token| JaasError::Unexpected { line, expected, found: found.describe() };
    loop {
        let (token, line) = lexer.next_token()?;
        let name = match token {
            Token::End => return Ok(file),
            Token::Word(name) => name,
            other => return Err(unexpected(line, "a section name", &other)),
        };
        let (token, line) = lexer.next_token()?;
        if token != Token::Symbol('{') {
            return Err(unexpected(line, "'{' after the section name", &token));
        }
        let mut section = Section { name, modules: Vec::new() };
        loop {
            let (token, line) = lexer.next_token()?;
            let class = match token {
                Token::Symbol('}') => break,
                Token::Word(class) => class,
                other => return Err(unexpected(line, "a login module class or '}'", &other)),
            };
            let (token, line) = lexer.next_token()?;
            let flag = match &token {
                Token::Word(flag) => match flag.to_ascii_lowercase().as_str() {
                    "required" => ControlFlag::Required,
                    "requisite" => ControlFlag::Requisite,
                    "sufficient" => ControlFlag::Sufficient,
                    "optional" => ControlFlag::Optional,
                    _ => return Err(JaasError::UnknownFlag { line, flag: flag.clone() }),
                },
                other => return Err(unexpected(line, "a control flag", other)),
            };
            let mut options = Vec::new();
            loop {
                let (token, line) = lexer.next_token()?;
                let key = match token {
                    Token::Symbol(';') => break,
                    Token::Word(key) => key,
                    other => return Err(unexpected(line, "an option name or ';'", &other)),
                };
                let (token, line) = lexer.next_token()?;
                if token != Token::Symbol('=') {
                    return Err(unexpected(line, "'=' after the option name", &token));
                }
                let (token, line) = lexer.next_token()?;
                let value = match token {
                    Token::Word(value) | Token::Quoted(value) => value,
                    other => return Err(unexpected(line, "an option value", &other)),
                };
                options.push((key, value));
            }
            section.modules.push(LoginModule { class, flag, options });
        }
        let (token, line) = lexer.next_token()?;
        if token != Token::Symbol(';') {
            return Err(unexpected(line, "';' after the section's '}'", &token));
        }
        file.sections.push(section);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZKREF: &str = r#"
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};
// the client side, as zkCli reads it
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="jaasuser" /* inline */ password="jaas_password";
};
"#;

    #[test]
    fn reads_the_reference_file() {
        let file = parse(ZKREF).unwrap();
        assert_eq!(file.sections.len(), 2);
        let server = file.section("Server").unwrap();
        assert_eq!(server.modules.len(), 1);
        let module = &server.modules[0];
        assert_eq!(module.class, "org.apache.zookeeper.server.auth.DigestLoginModule");
        assert_eq!(module.flag, ControlFlag::Required);
        assert_eq!(
            module.options,
            vec![
                ("user_super".to_string(), "super_secret".to_string()),
                ("user_jaasuser".to_string(), "jaas_password".to_string())
            ]
        );
        let client = file.section("Client").unwrap();
        assert_eq!(client.modules[0].options[0], ("username".to_string(), "jaasuser".to_string()));
        assert!(file.section("server").is_none(), "names are case-sensitive");
    }

    #[test]
    fn quoted_values_keep_escapes_and_bare_values_work() {
        let file = parse("S { M optional a=bare b=\"with \\\"quote\\\" ; and brace }\"; };").unwrap();
        let options = &file.sections[0].modules[0].options;
        assert_eq!(options[0].1, "bare");
        assert_eq!(options[1].1, "with \"quote\" ; and brace }");
        assert_eq!(file.sections[0].modules[0].flag, ControlFlag::Optional);
    }

    #[test]
    fn errors_name_the_line_and_never_a_quoted_value() {
        let error =
            parse("Server {\n  M required\n  user_a=\"secret\";\n};\nClient {\n  M required x \"y\";\n};").unwrap_err();
        assert_eq!(
            error,
            JaasError::Unexpected { line: 6, expected: "'=' after the option name", found: "a quoted value".into() }
        );
        assert!(!error.to_string().contains("\"y\""));
        assert_eq!(
            parse("S {\n M mandatory;\n};").unwrap_err(),
            JaasError::UnknownFlag { line: 2, flag: "mandatory".into() }
        );
        assert_eq!(parse("S { M required a=\"open").unwrap_err(), JaasError::UnterminatedQuote { line: 1 });
        assert_eq!(parse("/* never closed").unwrap_err(), JaasError::UnterminatedComment { line: 1 });
        assert!(matches!(
            parse("S { M required; }").unwrap_err(),
            JaasError::Unexpected { expected: "';' after the section's '}'", .. }
        ));
        assert!(matches!(parse("S M required; };").unwrap_err(), JaasError::Unexpected { line: 1, .. }));
        let large = "#".repeat(JAAS_FILE_BYTES_MAX + 1);
        assert!(matches!(parse(&large).unwrap_err(), JaasError::TooLarge { .. }));
    }

    #[test]
    fn repeated_sections_merge() {
        let file = parse("A { M required x=1; }; A { N sufficient y=2; };").unwrap();
        let merged = file.section("A").unwrap();
        assert_eq!(merged.modules.len(), 2);
        assert_eq!(merged.modules[1].class, "N");
    }

    #[test]
    fn debug_output_hides_option_values() {
        let file = parse(ZKREF).unwrap();
        let shown = format!("{file:?}");
        assert!(shown.contains("user_jaasuser"));
        assert!(!shown.contains("jaas_password"));
        assert!(!shown.contains("super_secret"));
    }
}
