// Written at deploy time (and served live by local_runner.py): where the API lives.
// Optional: auth: true shows the access-token field (the API then wants "Authorization: Bearer <token>").
window.HUMANPARSE_CONFIG = window.HUMANPARSE_CONFIG || { apiBase: "/api" };
