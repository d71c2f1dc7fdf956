"""Finding a place from what a citizen types: numbers, geocodes, names in Khmer or Latin
letters, misspellings, and names several places share."""

from __future__ import annotations

import pytest

from services.intake import places


def codes(found) -> list[str]:
    return [unit.code for unit in found]


@pytest.mark.parametrize("typed, code", [
    ("Battambang", "02"),
    ("Batambang", "02"),
    ("battambang province", "02"),
    ("Siem Reap", "17"),
    ("Siemreap", "17"),
    ("Seam Reap", "17"),
    ("siem-reap", "17"),
    ("Kampong Cham", "03"),
    ("Kompong Cham", "03"),
    ("Kompong Chhnang", "04"),
    ("Kratié", "10"),
    ("Pnom Penh", "12"),
    ("Mondulkiri", "11"),
    ("Tbong Khmum", "25"),
])
def test_a_province_by_its_latin_name_spelt_as_people_spell_it(typed, code):
    assert codes(places.find(typed, "province")) == [code]


@pytest.mark.parametrize("typed, code", [
    ("បាត់ដំបង", "02"),
    ("ភ្នំពេញ", "12"),
    ("រាជធានី ភ្នំពេញ", "12"),
    ("ខេត្តសៀមរាប", "17"),
    ("ខេត្ត\u200bសៀមរាប", "17"),
    # Subscript TA typed for the subscript DA the official name has.
    ("ឧត្តរមានជ័យ", "22"),
])
def test_a_province_by_its_khmer_name(typed, code):
    assert codes(places.find(typed, "province")) == [code]


def test_khmer_typed_in_another_code_point_order_is_the_same_name():
    decomposed = "\u1780\u17c4\u17c7\u1780\u17bb\u1784"  # កោះកុង, as NFC has it
    assert codes(places.find(decomposed, "province")) == ["09"]


def test_a_number_is_a_position_in_the_list_offered():
    assert codes(places.find("2", "province")) == ["02"]
    assert codes(places.find("២", "province")) == ["02"]
    assert codes(places.find("1", "district", "02")) == ["0201"]
    assert codes(places.find("2", "commune", "0201", offered=["020102", "020101"])) == ["020101"]
    assert places.find("26", "province") == []
    assert places.find("0", "province") == []


def test_a_geocode_typed_directly():
    assert codes(places.find("120101", "province")) == ["120101"]
    assert codes(places.find("1201", "province")) == ["1201"]
    assert codes(places.find("០២០១", "commune", "1201")) == ["0201"]
    assert places.find("999999", "province") == []


def test_a_district_or_commune_named_where_a_province_is_asked():
    assert codes(places.find("Chamkar Mon", "province")) == ["1201"]
    assert codes(places.find("Tonle Basak", "province")) == ["120101"]


def test_a_name_is_looked_for_within_the_place_chosen():
    assert codes(places.find("Battambang", "district", "02")) == ["0203"]
    assert codes(places.find("Kantueu Muoy", "commune", "0201")) == ["020101"]
    assert places.find("Tonl Basak", "commune", "0201") == []


def test_a_place_outside_the_one_chosen_is_found_when_spelt_exactly():
    assert codes(places.find("Tonle Basak", "commune", "0201")) == ["120101"]
    assert codes(places.find("Chamkar Mon", "district", "02")) == ["1201"]
    assert places.find("Chamkar Mn", "district", "02") == []


def test_a_name_several_places_share_offers_them_all():
    found = places.find("Samraong", "province")
    assert len(found) == 2 and {u.province_code for u in found} == {"21", "22"}
    labels = [places.label(u, "en", parents=True) for u in found]
    assert all("(" in label for label in labels)
    assert len(places.find("Samraong", "district", "21")) == 1


def test_the_beginning_of_a_name_offers_what_begins_so():
    assert codes(places.find("kampong", "province")) == ["03", "04", "05", "06"]
    assert codes(places.find("Kantueu", "commune", "0201")) == ["020101", "020102"]


def test_nothing_like_it_finds_nothing():
    assert places.find("zzzz", "province") == []
    assert places.find("", "province") == []
    assert places.find("Kap", "province") == []


def test_labels_and_paths():
    commune = places.unit("120101")
    assert places.label(commune, "en", parents=True) == "Tonle Basak (Chamkar Mon, Phnom Penh)"
    assert places.label(commune, "km") == "ទន្លេបាសាក់"
    assert places.path(commune) == {"province": "12", "district": "1201", "commune": "120101"}
    assert places.path(places.unit("1201")) == {"province": "12", "district": "1201"}
    assert len(places.within("province")) == 25
    assert len(places.within("commune")) == 1661
