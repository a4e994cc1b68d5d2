"""The whole Verify Push login flow from a pytest test: the backend side through the official
twilio-python library, the phone played by a virtual device, the result awaited on the live
event stream, and a second challenge expired by moving the emulator's clock."""

import pytest
from twilio.base.exceptions import TwilioRestException

from conftest import SERVICE_SID
from emulator import EmulatorError


def test_a_login_approved_on_the_phone(emulator, twilio):
    device = emulator.create_device(SERVICE_SID, "user-0001")
    assert device["status"] == "verified"
    entity = twilio.verify.v2.services(SERVICE_SID).entities("user-0001")
    assert entity.factors(device["factor_sid"]).fetch().status == "verified"

    with emulator.events(ServiceSid=SERVICE_SID, Identity="user-0001") as events:
        challenge = entity.challenges.create(
            factor_sid=device["factor_sid"],
            details_message="Log in to Owl Bank?",
            details_fields=[{"label": "IP address", "value": "10.0.0.1"}],
        )
        assert challenge.status == "pending"
        emulator.answer(device["factor_sid"], "latest", "approved")
        approved = events.next("challenge.approved")
    assert approved["challenge_sid"] == challenge.sid
    assert entity.challenges(challenge.sid).fetch().status == "approved"


def test_a_login_that_waits_too_long_expires(emulator, twilio):
    device = emulator.create_device(SERVICE_SID, "user-0002", style="ios")
    entity = twilio.verify.v2.services(SERVICE_SID).entities("user-0002")
    challenge = entity.challenges.create(factor_sid=device["factor_sid"], details_message="Log in?")

    emulator.set_clock(advance=301)  # challenges expire after 5 minutes by default
    assert entity.challenges(challenge.sid).fetch().status == "expired"
    with pytest.raises(EmulatorError) as refused:
        emulator.answer(device["factor_sid"], challenge.sid, "approved")
    assert refused.value.code == 60323


def test_a_denied_login_and_a_device_of_another_identity(emulator, twilio):
    mine = emulator.create_device(SERVICE_SID, "user-0003")
    theirs = emulator.create_device(SERVICE_SID, "user-0004")
    entity = twilio.verify.v2.services(SERVICE_SID).entities("user-0003")
    challenge = entity.challenges.create(factor_sid=mine["factor_sid"], details_message="Log in?")
    with pytest.raises(EmulatorError) as refused:
        emulator.answer(theirs["factor_sid"], challenge.sid, "approved")
    assert refused.value.code == 20404
    emulator.answer(mine["factor_sid"], challenge.sid, "denied")
    assert entity.challenges(challenge.sid).fetch().status == "denied"
    with pytest.raises(TwilioRestException) as gone:
        twilio.verify.v2.services(SERVICE_SID).entities("user-0003").challenges("YC" + "0" * 32).fetch()
    assert gone.value.status == 404
