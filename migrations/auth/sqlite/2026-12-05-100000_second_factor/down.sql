DROP TABLE mfa_challenges;
DROP TABLE mfa_passkeys;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_totp;
