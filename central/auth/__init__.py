"""Who may do what on central: operator accounts and roles, API tokens for tools, and the audit log."""
