"""A real Zope application for test_zope_app.py, in a process of its own
(Zope's startup configures process-wide state: the component registry,
security, the database).

``python -m appendonly.tests.zope_worker INSTANCE`` writes a Zope instance
in the folder INSTANCE (``etc/zope.conf``, ``etc/site.zcml`` including
``appendonly``, a FileStorage in ``var/Data.fs``), starts it with
``Zope2.Startup.run.make_wsgi_app`` (what ``runwsgi etc/zope.ini`` runs),
adds its content, and serves it with waitress (8 threads) on a free port
of 127.0.0.1, printing ``PORT <n>`` once it listens.

Content: a user ``editor`` (password ``secret``, role Manager) and two
folders marked ``IActivityLogHolder``, each with an ActivityLog of 3 layers
of 5 entries (so the tests prune into the archive) and a DictData
``prefs``: ``/public`` (View acquired: anonymous users may read it, as in
a new Zope site) and ``/private`` (View for Manager only).  The pages
``@@append`` and ``@@prefs`` are this application's own, written as a
Zope developer would, with the package's adapters.
"""
import json
import pathlib
import signal
import sys

ZOPE_CONF = """\
instancehome {instance}
<zodb_db main>
  <filestorage>
    path {instance}/var/Data.fs
  </filestorage>
  mount-point /
</zodb_db>
"""

SITE_ZCML = """\
<configure
    xmlns="http://namespaces.zope.org/zope"
    xmlns:browser="http://namespaces.zope.org/browser">
  <include package="Zope2.App" />
  <include package="appendonly" />
  <browser:page
      for="appendonly.interfaces.IActivityLogHolder"
      name="append"
      class="appendonly.tests.zope_worker.AppendView"
      permission="zope2.ManageProperties"
      />
  <browser:page
      for="appendonly.interfaces.IActivityLogHolder"
      name="prefs"
      class="appendonly.tests.zope_worker.PrefsView"
      permission="zope2.ManageProperties"
      />
</configure>
"""


class AppendView:
    """POST ``entry=...``: append it to the context's activity log."""

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        from appendonly.interfaces import IActivityLog
        IActivityLog(self.context).append(self.request.form['entry'])
        return 'ok'


class PrefsView:
    """POST ``key=...&value=...``: set it in the context's ``prefs``
    through the IDurableDict adapter; return the dict as JSON."""

    def __init__(self, context, request):
        self.context, self.request = context, request

    def __call__(self):
        from appendonly.interfaces import IDurableDict
        prefs = IDurableDict(self.context.prefs)
        if self.request.form.get('key'):
            prefs[self.request.form['key']] = self.request.form['value']
        self.request.response.setHeader('Content-Type', 'application/json')
        return json.dumps(dict(prefs.items()))


def write_instance(instance):
    (instance / 'etc').mkdir(parents=True, exist_ok=True)
    (instance / 'var').mkdir(exist_ok=True)
    (instance / 'etc' / 'zope.conf').write_text(
        ZOPE_CONF.format(instance=instance))
    (instance / 'etc' / 'site.zcml').write_text(SITE_ZCML)


def add_content():
    import transaction
    import Zope2
    from zope.interface import alsoProvides

    from appendonly import ActivityLog
    from appendonly.facades import DictData
    from appendonly.interfaces import IActivityLogHolder

    app = Zope2.app()
    try:
        app.acl_users._doAddUser('editor', 'secret', ['Manager'], [])
        for name in ('public', 'private'):
            app.manage_addFolder(name)
            folder = app[name]
            alsoProvides(folder, IActivityLogHolder)
            folder.activity_log = ActivityLog(max_layers=3, max_length=5)
            folder.prefs = DictData()
        app.private.manage_permission('View', ['Manager'], acquire=0)
        transaction.commit()
    finally:
        app._p_jar.close()


def main(instance):
    from waitress.server import create_server
    from Zope2.Startup.run import make_wsgi_app

    instance = pathlib.Path(instance).resolve()
    write_instance(instance)
    wsgi = make_wsgi_app({}, str(instance / 'etc' / 'zope.conf'))
    add_content()
    server = create_server(wsgi, host='127.0.0.1', port=0, threads=8)
    # Procs.stop sends SIGTERM and expects a clean exit.
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
    print('PORT', server.effective_port, flush=True)
    server.run()


if __name__ == '__main__':
    main(sys.argv[1])
