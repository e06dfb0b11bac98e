"""The Flask application factory (gunicorn serves `connector.app:create_app()`)."""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from connector.config import Settings
from connector.csrf import csrf_token
from connector.headers import secure_transport, transport_headers
from connector.keys import check_secret_key
from connector.logs import configure_logging
from connector.runtime import Runtime
from jobs.queue import DebouncedKicker
from webhooks.endpoint import WebhookEndpoint


def create_app(runtime: Runtime | None = None) -> Flask:
    """Build the app; without a runtime, settings come from the environment.

    Raises ConfigError when a setting is missing or CONNECTOR_SECRET_KEY does not decrypt
    the stored credentials.
    """
    runtime = runtime or Runtime(Settings.from_env())
    check_secret_key(runtime)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body_bytes
    app.config["SECRET_KEY"] = runtime.settings.secret_key
    # Sessions (staff console, merchant settings) travel only with same-site requests and
    # top-level navigations such as Shopify's OAuth redirect back to us.
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    secure_transport(app, runtime.settings)
    app.extensions["connector"] = runtime
    app.extensions["kicker"] = DebouncedKicker(runtime.settings.kick_debounce_seconds)
    configure_logging(runtime.settings.log_level, runtime.settings.log_format)

    from connector.console.views import blueprint as console_blueprint
    from connector.install.oauth import blueprint as install_blueprint
    from connector.install.settings import blueprint as settings_blueprint
    from connector.monitoring import blueprint as monitoring_blueprint

    app.register_blueprint(install_blueprint)
    app.register_blueprint(settings_blueprint)
    app.register_blueprint(console_blueprint)
    app.register_blueprint(monitoring_blueprint)
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_error: RequestEntityTooLarge) -> ResponseReturnValue:
        return jsonify(error="body too large"), 413

    # Shopify's webhooks are answered before Flask sees them (webhooks/endpoint.py).
    app.wsgi_app = WebhookEndpoint(  # type: ignore[method-assign]
        app.wsgi_app, runtime, app.extensions, transport_headers(runtime.settings)
    )
    return app
