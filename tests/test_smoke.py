from risk.app import create_app


def test_factory_builds_an_app_without_connecting(settings):
    app = create_app(settings)
    assert app.extensions["presign"].settings.database_url == settings.database_url


def test_schema_is_at_head(rt):
    from risk.schema import current_revision, head_revision

    assert current_revision(rt.engine) == head_revision()
