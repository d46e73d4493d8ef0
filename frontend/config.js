// Written at deploy time (and served live by local_runner.py): where the API lives.
window.HUMANPARSE_CONFIG = window.HUMANPARSE_CONFIG || { apiBase: "/api" };
