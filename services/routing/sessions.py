"""Staff log in to their named accounts here, and find who works at an office (the
console's assignment picker). The accounts themselves are shared/accounts.py's."""

from __future__ import annotations

from werkzeug.wrappers import Response

from services.routing.schemas import CurrentSession, Login, SessionOut, StaffMember
from shared import access, accounts
from shared.web import HttpError, endpoint, forbidden, not_found


def _refused(refusal: accounts.Refusal) -> HttpError:
    return HttpError(refusal.status, refusal.errors, refusal.headers)


class Sessions:
    """Mixed into routing's Service, whose database and directory it uses."""

    @endpoint("POST", "/v1/sessions", allow=(access.PUBLIC,), body=Login, response=SessionOut,
              status=201, errors={
                  401: "wrong username or password, a disabled account, or a second factor "
                       "missing or wrong (errors under `totp`)",
                  403: "a one-time password: log in with `new_password` to change it",
                  429: "too many failed logins of this username or from this address"})
    def log_in(self, request, payload):
        """Log in to a named account; the session token goes in `Authorization: Bearer`."""
        new_password = payload.get("new_password")
        if new_password is not None and (problem := accounts.password_problem(new_password)):
            raise HttpError(400, {"new_password": [problem]})
        with self.db.transaction() as cursor:
            attempt = accounts.begin(cursor, payload["username"], request.remote_addr or "")
            required = accounts.totp_roles(cursor)
        if isinstance(attempt, accounts.Refusal):
            raise _refused(attempt)
        # The slow hash is checked holding no connection of the pool.
        checked = accounts.check(attempt, payload["password"], payload.get("totp"),
                                 new_password, attempt.row is not None
                                 and attempt.row["role"] in required)
        if isinstance(checked, accounts.Refusal):
            if not checked.failed:
                with self.db.transaction() as cursor:
                    accounts.forgive(cursor, attempt)
            raise _refused(checked)
        with self.db.transaction() as cursor:
            session = accounts.finish(cursor, checked)
        if isinstance(session, accounts.Refusal):
            raise _refused(session)
        return SessionOut().dump({"session_token": session.token,
                                  "expires_at": session.expires_at,
                                  "account": session.account.as_json()})

    @staticmethod
    def _session_token(request, principal: access.Principal) -> str:
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        if not token.startswith(accounts.SESSION_TOKEN_PREFIX):
            raise forbidden("this token is an office system's, not a staff session")
        return token

    @endpoint("GET", "/v1/sessions/current", allow=access.ROLES, response=CurrentSession)
    def current_session(self, request, principal):
        """The account logged in with this session, and when the session ends unless used."""
        token = self._session_token(request, principal)
        with self.db.transaction() as cursor:
            expires_at = accounts.session_expires_at(cursor, token)
        return CurrentSession().dump({"username": principal.id, "name": principal.name,
                                      "role": principal.role, "office_id": principal.office_id,
                                      "expires_at": expires_at})

    @endpoint("DELETE", "/v1/sessions/current", allow=access.ROLES, status=204)
    def log_out(self, request, principal):
        """Log out: this session's token works no more."""
        token = self._session_token(request, principal)
        with self.db.transaction() as cursor:
            accounts.end_session(cursor, token)
        return Response(status=204)

    @endpoint("GET", "/v1/offices/{office_id}/staff", response=StaffMember(many=True),
              allow=(access.OfficeInPath(), "auditor", "admin"))
    def office_staff(self, request, office_id):
        """The active accounts of an office, by name: whom a case may be assigned to."""
        if office_id not in self.directory():
            raise not_found("office")
        with self.db.transaction() as cursor:
            found = accounts.of_office(cursor, office_id)
        return StaffMember(many=True).dump(
            [{"username": a.username, "name": a.name, "role": a.role} for a in found])
