"""The Zope feed view, ``@@appendonly-feed`` (registered in
``appendonly/configure.zcml`` for ``IActivityLogHolder``, with the
``zope2.View`` permission): the JSON feed of the Pyramid add-on, for a
Zope object's activity log (see :mod:`appendonly._feed`)."""
import json

from Products.Five import BrowserView
from zope.interface import implementer

from appendonly import _feed
from appendonly.interfaces import IActivityFeedView
from appendonly.interfaces import IActivityLog


@implementer(IActivityFeedView)
class FeedView(BrowserView):
    """See IActivityFeedView."""

    limit = 1000

    def __call__(self):
        response = self.request.response
        response.setHeader('Content-Type', 'application/json')
        try:
            cursor = _feed.parse_cursor(self._getall)
        except _feed.CursorError as e:
            response.setStatus(400)
            return json.dumps({'error': str(e)})
        log = IActivityLog(self.context, None)
        if log is None:
            response.setStatus(404)
            return json.dumps({'error': 'this object has no activity log'})
        return json.dumps(_feed.answer(log, cursor, self.limit))

    def _getall(self, name):
        # Zope's form holds a string, or a list when a name is repeated.
        value = self.request.form.get(name)
        if value is None:
            return []
        return value if isinstance(value, list) else [value]
