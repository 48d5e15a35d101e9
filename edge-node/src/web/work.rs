//! The two screens where the archive room's hours go: the QC screen
//! (keyboard: a key per verdict, the sampled page large with its
//! neighbours) and the exception queue (regrouping pages by keyboard or
//! drag, metadata entry with the ID checksum checked as you type, the
//! document checklist, resolving recorded exceptions).
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::{Viewer, batch_url, csrf_field, json_island, layout, see_other, segment};
use crate::api::{ApiError, ApiState};
use crate::exceptions::{self, Exception};
use crate::files::{self, FileMetadata, Grouping};
use crate::lifecycle::{Actor, BatchState, Role};
use crate::qc;
use crate::store::BatchRow;
use crate::template::{self, Versioned};
use crate::text::{Lang, code_label, state_label};
use dangan_shared::dictionary::{Dictionary, DictionaryKind};

#[derive(Serialize)]
struct QcSample {
    page: u32,
    verdict: Option<String>,
}

#[derive(Serialize)]
struct QcData<'a> {
    batch: &'a str,
    round: u32,
    pages: u32,
    sample: Vec<QcSample>,
    defects: Vec<(String, String)>,
    open: bool,
}

/// The defects an inspector may record, in key order (key 1 is the
/// first): the entries in use of the defects dictionary from the hub,
/// with their labels in the viewer's language.
fn defect_keys(defects: &Dictionary, l: Lang) -> Vec<(String, String)> {
    defects
        .entries
        .iter()
        .filter(|e| e.active)
        .map(|e| (e.code.clone(), l.pick(&e.zh, &e.en).to_owned()))
        .collect()
}

fn actor(viewer: &Viewer) -> Actor {
    Actor::user(viewer.user.username.clone(), viewer.user.role)
}

fn batch_of(store: &crate::store::Store, name: &str) -> Result<BatchRow, ApiError> {
    store
        .batch(name)?
        .ok_or_else(|| ApiError::not_found(format!("no batch named {name:?}")))
}

pub(super) async fn qc_screen(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(batch): Path<String>,
) -> Response {
    let name = batch.clone();
    let loaded = state
        .db(move |_, store| {
            let row = batch_of(store, &batch)?;
            let report = qc::report(store.conn(), &batch)?;
            let defects =
                crate::dictionaries::current(store.conn(), DictionaryKind::Defects)?.dictionary;
            Ok((row, report, defects))
        })
        .await;
    let (row, report, defects) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => return viewer.fail(err),
    };
    let l = viewer.lang;
    let url = batch_url(&name);
    let batch_state: Option<BatchState> = row.state.parse().ok();
    let round = report.rounds.last();
    let open = round.is_some_and(|r| r.outcome.is_none()) && batch_state == Some(BatchState::InQc);
    let data = round.map(|r| QcData {
        batch: &name,
        round: r.round,
        pages: r.pages,
        sample: r
            .checks
            .iter()
            .map(|c| QcSample {
                page: c.page,
                verdict: c.verdict.clone(),
            })
            .collect(),
        defects: defect_keys(&defects, l),
        open,
    });
    let title = format!("{} · {name}", l.pick("质检", "QC"));
    let may_check = viewer.may(&[Role::Inspector]);
    let body = html! {
        p.crumbs { a href="/" { (l.pick("批次", "Batches")) } " › " a href=(url) { (name) } " › " (l.pick("质检", "QC")) }
        h1 { (title) " " span #batch-state class=(format!("state s-{}", row.state)) data-state=(row.state) { (state_label(l, &row.state)) } }
        @match (&data, open) {
            (Some(data), true) => {
                @if !may_check { p.error { (l.pick("只有质检员可以记录质检结论。", "Only inspectors record QC verdicts.")) } }
                div #qc.qc data-batch-url=(format!("/api/v1/batches/{}", segment(&name))) {
                    div.qc-status {
                        span #qc-position {} " · "
                        span #qc-progress {} " · "
                        span #qc-verdict {}
                        span #qc-message role="status" {}
                    }
                    div.qc-stage {
                        figure.neighbour { img #qc-prev alt=(l.pick("上一页", "previous page")); figcaption #qc-prev-label {} }
                        figure.current { img #qc-image alt=(l.pick("抽检页", "sampled page")); figcaption #qc-label {} }
                        figure.neighbour { img #qc-next alt=(l.pick("下一页", "next page")); figcaption #qc-next-label {} }
                    }
                    div.qc-keys {
                        kbd { "Enter" } " / " kbd { "P" } " " (l.pick("合格", "pass")) " · "
                        @for (i, (_, label)) in defect_keys(&defects, l).iter().enumerate() {
                            kbd { (i + 1) } " " (label) " · "
                        }
                        kbd { "→" } " / " kbd { "N" } " " (l.pick("下一张", "next")) " · "
                        kbd { "←" } " " (l.pick("上一张", "previous")) " · "
                        kbd { "F" } " " (l.pick("完成本轮", "finish round"))
                    }
                    button #qc-finish type="button" { (l.pick("完成本轮质检", "Finish the round")) " (F)" }
                }
                script #qc-data type="application/json" { (json_island(data)) }
            }
            _ => {
                @if let Some(r) = round {
                    p #qc-outcome {
                        (l.pick("第", "Round ")) (r.round) (l.pick("轮", "")) ": "
                        @match r.outcome.as_deref() {
                            Some("pass") => strong.ok { (l.pick("通过", "passed")) },
                            Some("rework") => strong.warn { (l.pick("不通过，返工", "failed: rework")) },
                            _ => (l.pick("未完成", "not finished")),
                        }
                        " · " a href=(format!("{url}/report")) { (l.pick("质检报告", "QC report")) }
                    }
                } @else {
                    p.muted { (l.pick("该批次还没有质检。", "No QC round yet.")) }
                }
                @if matches!(batch_state, Some(BatchState::Scanned | BatchState::Rework)) && may_check {
                    form method="post" action=(format!("{url}/qc/start")) {
                        (csrf_field(&viewer))
                        button #qc-start type="submit" { (l.pick("开始质检（抽样）", "Start QC (draw the sample)")) }
                    }
                }
            }
        }
    };
    layout(&viewer, &title, &["qc.js"], body).into_response()
}

pub(super) async fn qc_start(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(batch): Path<String>,
) -> Response {
    if !viewer.may(&[Role::Inspector]) {
        return viewer.fail(ApiError::forbidden(
            viewer.pick("只有质检员可以开始质检", "only inspectors start QC"),
        ));
    }
    let target = format!("{}/qc", batch_url(&batch));
    let actor = actor(&viewer);
    match state
        .db(move |_, store| Ok(qc::start(store.conn_mut(), &batch, &actor, None)?))
        .await
    {
        Ok(_) => see_other(&target),
        Err(err) => viewer.fail(err),
    }
}

#[derive(Deserialize)]
pub(super) struct QueueQuery {
    file: Option<i64>,
    #[serde(default)]
    all: bool,
}

/// The exception queue page's data.
struct Queue {
    row: BatchRow,
    exceptions: Vec<Exception>,
    grouping: Grouping,
    selected: Option<FileMetadata>,
    template: Option<Versioned>,
    templates: Vec<Versioned>,
}

pub(super) async fn exception_queue(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(batch): Path<String>,
    Query(query): Query<QueueQuery>,
) -> Response {
    let loaded = state
        .db(move |_, store| {
            let row = batch_of(store, &batch)?;
            let exceptions = exceptions::list(store.conn(), &batch, query.all)?;
            let grouping = files::grouping(store.conn(), &batch)?;
            // The file to fill in: the one asked for, else the first with
            // an open exception, else the first.
            let selected_seq = query
                .file
                .or_else(|| {
                    exceptions
                        .iter()
                        .find(|e| e.resolved_at.is_none())
                        .and_then(|e| e.business_file)
                })
                .or_else(|| grouping.business_files.first().map(|f| f.seq));
            let selected = match selected_seq {
                Some(seq) if grouping.business_files.iter().any(|f| f.seq == seq) => {
                    Some(files::metadata(store.conn(), &batch, seq)?)
                }
                _ => None,
            };
            let template = template::for_batch(store.conn(), row.id)?;
            let templates = template::list(store.conn())?;
            Ok(Queue {
                row,
                exceptions,
                grouping,
                selected,
                template,
                templates,
            })
        })
        .await;
    match loaded {
        Ok(queue) => render_queue(&viewer, &queue).into_response(),
        Err(err) => viewer.fail(err),
    }
}

fn render_queue(viewer: &Viewer, queue: &Queue) -> Markup {
    let l = viewer.lang;
    let name = &queue.row.name;
    let url = batch_url(name);
    let editable = matches!(
        queue.row.state.parse::<BatchState>(),
        Ok(BatchState::Open | BatchState::Scanned | BatchState::Rework)
    ) && viewer.may(&[Role::Operator]);
    let open: Vec<&Exception> = queue
        .exceptions
        .iter()
        .filter(|e| e.resolved_at.is_none())
        .collect();
    let title = format!("{} · {name}", l.pick("异常处理", "Exception queue"));
    let body = html! {
        p.crumbs { a href="/" { (l.pick("批次", "Batches")) } " › " a href=(url) { (name) } " › " (l.pick("异常处理", "Exception queue")) }
        h1 { (title) " " span #batch-state class=(format!("state s-{}", queue.row.state)) data-state=(queue.row.state) { (state_label(l, &queue.row.state)) } }
        @if !editable {
            p.muted { (l.pick("该批次当前不可编辑（质检中或已通过），或您不是扫描员。", "This batch cannot be edited now (in QC or accepted), or you are not an operator.")) }
        }
        div.queue {
            section.exceptions {
                h2 { (l.pick("待处理异常", "Open exceptions")) " " span #open-count { (open.len()) } }
                @if open.is_empty() { p #no-exceptions.ok { (l.pick("没有待处理的异常。", "No open exceptions.")) } }
                ul #exception-list {
                    @for e in &queue.exceptions {
                        li.exception.resolved[e.resolved_at.is_some()] data-id=(e.id) data-code=(e.code) {
                            strong { (code_label(l, &e.code)) }
                            @if let Some(file) = e.business_file {
                                " · " a href=(format!("?file={file}#file-{file}")) { (l.pick("业务件", "file")) " " (file) }
                            }
                            @if let Some(page) = e.page { " · " a href=(format!("{url}/pages/{page}")) { (l.pick("第", "page ")) (page) (l.pick("页", "")) } }
                            @if !e.missing.is_empty() { div.muted { (l.pick("缺少", "missing")) ": " (e.missing.iter().map(|m| field_label(l, m)).collect::<Vec<_>>().join("、")) } }
                            @if l == Lang::En || e.id.starts_with('r') { div.muted { (e.reason) } }
                            @if let Some(resolution) = &e.resolution {
                                div { (l.pick("已处理", "resolved")) " · " (e.resolved_by.as_deref().unwrap_or("")) ": " (resolution) }
                            } @else if e.id.starts_with('r') && editable {
                                form.resolve method="post" action=(format!("{url}/exceptions/{}/resolve", segment(&e.id))) {
                                    (csrf_field(viewer))
                                    input name="note" required placeholder=(l.pick("处理说明", "How it was resolved"));
                                    button type="submit" { (l.pick("标记已处理", "Resolve")) }
                                }
                            }
                        }
                    }
                }
                p { a href=(if queue.exceptions.iter().any(|e| e.resolved_at.is_some()) { "?".to_owned() } else { "?all=true".to_owned() }) { (l.pick("显示/隐藏已处理", "Show/hide resolved")) } }
            }
            section.grouping {
                h2 { (l.pick("业务件分组", "Grouping")) }
                @if editable {
                    p.muted.keys { (l.pick("键盘：←/→ 选页，Shift+←/→ 调整顺序，Shift+↑/↓ 移到上/下一个业务件，S 从此页拆分，J 与上一个业务件合并，X 标记/取消分隔页，Enter 著录。也可拖动页面。", "Keys: ←/→ select a page, Shift+←/→ move it, Shift+↑/↓ move it to the previous/next file, S split here, J join with the previous file, X toggle separator, Enter fill in metadata. Pages can also be dragged.")) }
                }
                div #grouping data-editable=(editable) data-api=(format!("/api/v1/batches/{}", segment(name))) {
                    @for file in &queue.grouping.business_files {
                        @let has_exception = open.iter().any(|e| e.business_file == Some(file.seq));
                        div.file-row.selected[queue.selected.as_ref().is_some_and(|s| s.seq == file.seq)].flagged[has_exception] id=(format!("file-{}", file.seq)) data-file=(file.seq) {
                            div.file-head {
                                a href=(format!("?file={}#file-{}", file.seq, file.seq)) {
                                    (l.pick("业务件", "File")) " " (file.seq)
                                }
                                " " @match &file.business_number { Some(n) => code { (n) }, None => span.warn { (l.pick("无流水号", "no number")) } }
                                " · " (file.pages.len()) " " (l.pick("页", "pages"))
                                @if has_exception { " " span.badge { "!" } }
                            }
                            div.strip data-file=(file.seq) {
                                @for page in &file.pages {
                                    @let separator = file.separators.contains(page);
                                    div.page.separator[separator] tabindex="0" draggable=(if editable { "true" } else { "false" }) data-page=(page) data-file=(file.seq) {
                                        img loading="lazy" src=(format!("/api/v1/batches/{}/pages/{page}/thumbnail", segment(name))) alt=(page);
                                        span { (page) @if separator { " " (l.pick("分隔页", "separator")) } }
                                    }
                                }
                            }
                        }
                    }
                }
                span #grouping-status role="status" {}
            }
            @if let Some(meta) = &queue.selected {
                (metadata_form(viewer, queue, meta, editable))
            }
        }
    };
    layout(viewer, &title, &["exceptions.js"], body)
}

fn field_label(l: Lang, field: &str) -> String {
    let (zh, en) = match field {
        "business_number" => ("业务流水号", "business number"),
        "person_id" => ("身份证号", "person id"),
        "person_name" => ("姓名", "name"),
        "employer_id" => ("单位编号", "employer id"),
        "business_type" => ("业务类型", "business type"),
        "business_date" => ("业务日期", "business date"),
        "organisation" => ("经办机构", "organisation"),
        other => (other, other),
    };
    l.pick(zh, en).to_owned()
}

fn metadata_form(viewer: &Viewer, queue: &Queue, meta: &FileMetadata, editable: bool) -> Markup {
    let l = viewer.lang;
    let required: Vec<String> = queue
        .template
        .as_ref()
        .map(|t| t.template.required_metadata.clone())
        .unwrap_or_default();
    let documents: Vec<String> = queue
        .template
        .as_ref()
        .map(|t| t.template.required_documents.clone())
        .unwrap_or_default();
    let field = |key: &str, value: &Option<String>, extra: Markup| {
        let is_required = required.iter().any(|r| r == key);
        html! {
            label {
                (field_label(l, key)) @if is_required { " " span.req { "*" } }
                input name=(key) id=(format!("meta-{key}")) value=(value.as_deref().unwrap_or("")) disabled[!editable] required[is_required];
                (extra)
            }
        }
    };
    html! {
        section #metadata.metadata data-file=(meta.seq) {
            h2 { (l.pick("著录", "Metadata")) " · " (l.pick("业务件", "file")) " " (meta.seq) }
            form #metadata-form data-file=(meta.seq) {
                (field("business_number", &meta.business_number, html! {}))
                (field("person_id", &meta.person_id, html! { span #person-id-check.check role="status" {} }))
                (field("person_name", &meta.person_name, html! {}))
                (field("employer_id", &meta.employer_id, html! {}))
                label {
                    (field_label(l, "business_type"))
                    select name="business_type" id="meta-business_type" disabled[!editable] {
                        option value="" { "—" }
                        @for t in &queue.templates {
                            option value=(t.template.business_type) selected[meta.business_type.as_deref() == Some(t.template.business_type.as_str())] {
                                (t.template.business_type) " " (t.template.name)
                            }
                        }
                    }
                }
                label {
                    (field_label(l, "business_date")) @if required.iter().any(|r| r == "business_date") { " " span.req { "*" } }
                    input type="date" name="business_date" id="meta-business_date" value=(meta.business_date.as_deref().unwrap_or("")) disabled[!editable];
                }
                (field("organisation", &meta.organisation, html! {}))
                @if !documents.is_empty() {
                    fieldset.documents {
                        legend { (l.pick("材料清单", "Documents")) }
                        @for doc in &documents {
                            @let entry = meta.documents.iter().find(|d| &d.document == doc);
                            div.document data-document=(doc) {
                                label.inline {
                                    input type="checkbox" name="present" value=(doc) checked[entry.is_some_and(|e| e.present)] disabled[!editable];
                                    " " (doc)
                                }
                                input.absent-note name="absent_note" data-document=(doc) placeholder=(l.pick("缺件说明（未附此材料时填写）", "Why it is absent (if it is)")) value=(entry.filter(|e| !e.present).and_then(|e| e.note.as_deref()).unwrap_or("")) disabled[!editable];
                            }
                        }
                    }
                }
                @if let Some(source) = &meta.metadata_source {
                    p.muted { (l.pick("来源", "source")) ": " (source) @if let Some(by) = &meta.metadata_by { " · " (by) } }
                }
                @if let Some(retention) = &meta.retention {
                    p.muted { (l.pick("保管期限", "retention")) ": " (retention) @if let Some(until) = &meta.retention_until { " · " (l.pick("可鉴定日期", "appraisal from")) " " (until) } }
                }
                @if editable {
                    button #metadata-save type="submit" { (l.pick("保存著录", "Save metadata")) " (Ctrl+Enter)" }
                }
                span #metadata-status role="status" {}
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct NoteForm {
    note: String,
}

pub(super) async fn exception_resolve(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((batch, exception)): Path<(String, String)>,
    Form(form): Form<NoteForm>,
) -> Response {
    if !viewer.may(&[Role::Operator]) {
        return viewer.fail(ApiError::forbidden(viewer.pick(
            "只有扫描员可以处理异常",
            "only operators resolve exceptions",
        )));
    }
    let target = format!("{}/exceptions", batch_url(&batch));
    let actor = actor(&viewer);
    match state
        .db(move |_, store| {
            Ok(exceptions::resolve(
                store.conn_mut(),
                &batch,
                &exception,
                &form.note,
                &actor,
            )?)
        })
        .await
    {
        Ok(_) => see_other(&target),
        Err(err) => viewer.fail(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_defects_get_no_key_and_the_rest_keep_their_order() {
        let mut defects = Dictionary::builtin(DictionaryKind::Defects);
        let keys = defect_keys(&defects, Lang::Zh);
        assert_eq!(keys.len(), 8);
        assert_eq!(keys[0], ("skew".to_owned(), "歪斜".to_owned()));
        defects.entries[0].active = false;
        defects.entries[1].en = "Out of focus".into();
        let keys = defect_keys(&defects, Lang::En);
        assert_eq!(keys.len(), 7);
        assert_eq!(keys[0], ("blur".to_owned(), "Out of focus".to_owned()));
    }
}
