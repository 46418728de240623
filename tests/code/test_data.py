from __future__ import annotations

import pytest

from ticket_nlp.data import DataError, LabelledSet, load_labelled


def write_xlsx(path, rows):
    import openpyxl

    book = openpyxl.Workbook()
    for r in rows:
        book.active.append(r)
    book.save(path)


def test_team_export_xlsx_with_column_options_and_label_map(tmp_path):
    path = tmp_path / "team.xlsx"
    write_xlsx(path, [["工单号", "买家留言", "人工标注", "买家退款原因"],
                      ["1", "袖口开线", "质量", "七天无理由退货"],
                      ["2", "太大了", "尺码问题", None]])
    data = load_labelled(path, text_col="买家留言", label_col="人工标注", label_map={"质量": "quality_defect"})
    assert data.texts == ["袖口开线", "太大了"]
    assert data.labels == ["quality_defect", "size_exchange"]
    assert data.claimed == ["七天无理由退货", None]


def test_gbk_csv_is_detected(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes("问题描述,label\n快递三天没动,logistics\n".encode("gbk"))
    assert load_labelled(path).texts == ["快递三天没动"]


def test_bad_labels_are_reported_with_lines(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,label\n好,other\n差,terrible\n坏,quality\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_labelled(path)
    assert "line 3: 'terrible'" in str(err.value) and "line 4: 'quality'" in str(err.value)


def test_missing_column_lists_headers(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"\['a', 'b'\]"):
        load_labelled(path)


def test_realdev_format(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("id\tproduct\ttext\tprimary\tsecondary\tclaimed\texpect_mismatch\n"
                    "r1\t衣服\t开线了\tquality_defect\t\t七天无理由退换货\t1\n"
                    "r2\t衣服\t垃圾\tother\t\t质量问题\t\n", encoding="utf-8")
    data = load_labelled(path)
    assert data.expect_mismatch == [1, None]
    assert data.claimed == ["七天无理由退换货", "质量问题"]


def test_concat_combines_files():
    a = LabelledSet(["x"], ["other"], sha256="a")
    b = LabelledSet(["y"], ["logistics"], claimed=["物流停滞"], sha256="b")
    both = LabelledSet.concat([a, b])
    assert both.texts == ["x", "y"] and both.claimed == [None, "物流停滞"]
