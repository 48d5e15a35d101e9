//! The warehouse pages (库房管理): the overview with overdue loans, a room's
//! occupancy grid, locations and volumes with their place and loan state,
//! the keyboard-wedge screens (shelving, inventory check), loans and label
//! printing. Pages read the library; changes go through the JSON API from
//! `assets/warehouse.js`. A handheld scanner acting as a keyboard types a
//! code followed by Enter into the focused input: every scan screen keeps
//! one input focused and acts on Enter.
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::{Viewer, layout, segment};
use crate::api::warehouse::{location_detail, volume_detail};
use crate::api::{ApiError, ApiState};
use crate::lifecycle::Role;
use crate::text::Lang;
use crate::warehouse::{self as wh, Loan, LoanFilter, kind_label, loan_state_label};

const SCRIPTS: &[&str] = &["warehouse.js"];

fn today(node: &crate::node::Node) -> String {
    wh::today(&node.config.sync.time_zone)
}

fn err(lang: Lang) -> impl Fn(wh::WarehouseError) -> ApiError {
    move |e| crate::api::warehouse::error(e, lang)
}

fn location_link(code: &str) -> Markup {
    html! { a href=(format!("/warehouse/locations/{}", segment(code))) { (code) } }
}

fn volume_link(code: &str) -> Markup {
    html! { a href=(format!("/warehouse/volumes/{}", segment(code))) { (code) } }
}

fn item_link(code: &str) -> Markup {
    if code.starts_with("VOL-") {
        volume_link(code)
    } else {
        location_link(code)
    }
}

/// The place of an item as `room › cabinet › … › box`, names and codes.
pub fn path_markup(path: &[wh::Location]) -> Markup {
    html! {
        @if path.is_empty() {
            span.muted { "—" }
        }
        @for (i, loc) in path.iter().enumerate() {
            @if i > 0 { " › " }
            span.place title=(loc.code) { (loc.name) " (" (location_link(&loc.code)) ")" }
        }
    }
}

/// A loan's state in one line: who has it and until when, overdue in red.
pub fn loan_markup(l: Lang, loan: Option<&Loan>) -> Markup {
    html! {
        @match loan {
            None => span.loan-state.in-store { (l.pick("在库", "in store")) },
            Some(loan) => span.loan-state.error[loan.overdue] data-state=(loan.state) {
                (loan_state_label(l, &loan.state))
                @if loan.state == "lent" {
                    "：" (loan.borrower) " · " (l.pick("应还 ", "due ")) (loan.due_date)
                    @if loan.overdue { " · " strong { (l.pick("已逾期", "OVERDUE")) } }
                } @else {
                    "：" (loan.borrower)
                }
                " (" a href=(format!("/warehouse/loans#loan-{}", loan.id)) { (l.pick("借阅 ", "loan ")) (loan.id) } ")"
            }
        }
    }
}

fn nav(l: Lang) -> Markup {
    html! {
        nav.subnav {
            a href="/warehouse" { (l.pick("库房总览", "Overview")) }
            a href="/warehouse/shelve" { (l.pick("扫码上架", "Shelve")) }
            a href="/warehouse/loans" { (l.pick("借阅", "Loans")) }
            a href="/warehouse/checks" { (l.pick("盘点", "Inventory checks")) }
            a href="/warehouse/labels" { (l.pick("打印标签", "Labels")) }
        }
    }
}

fn overdue_banner(l: Lang, overdue: &[Loan]) -> Markup {
    html! {
        @if !overdue.is_empty() {
            div.banner.error #overdue {
                strong { (l.pick("借阅逾期提醒：", "Overdue loans: ")) }
                (overdue.len()) (l.pick(" 件原件已过应还日期未归还。", " originals are past their due date."))
                " " a href="/warehouse/loans" { (l.pick("查看借阅", "See the loans")) }
            }
        }
    }
}

/// The overdue reminder for the home page (empty when nothing is overdue).
pub(super) fn reminders(l: Lang, overdue: &[Loan]) -> Markup {
    overdue_banner(l, overdue)
}

pub(super) async fn overview(State(state): State<ApiState>, viewer: Viewer) -> Response {
    let l = viewer.lang;
    let loaded = state
        .db(move |node, store| {
            let conn = store.conn();
            let today = today(node);
            let all = wh::locations(conn).map_err(err(l))?;
            let overdue = wh::loans(conn, LoanFilter::Overdue, None, &today).map_err(err(l))?;
            let open = wh::loans(conn, LoanFilter::Open, None, &today).map_err(err(l))?;
            let (events, acked) = wh::feed_state(conn).map_err(err(l))?;
            Ok((all, overdue, open.len(), events - acked.min(events)))
        })
        .await;
    let (all, overdue, open_loans, unsent) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return viewer.fail(e),
    };
    let admin = viewer.user.role == Role::Admin;
    let title = l.pick("库房管理", "Warehouse");
    // Depth in the tree, for the indentation (parents come before their
    // children in `all`). Boxes on shelves are not listed here (a district
    // has thousands): a shelf's page lists them; unshelved boxes are.
    let mut depths: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for loc in &all {
        let depth = loc
            .parent
            .as_deref()
            .and_then(|p| depths.get(p))
            .map_or(0, |d| d + 1);
        depths.insert(&loc.code, depth);
    }
    let depth = |loc: &wh::Location| depths.get(loc.code.as_str()).copied().unwrap_or(0);
    let listed: Vec<&wh::Location> = all
        .iter()
        .filter(|loc| loc.kind != "box" || loc.parent.is_none())
        .collect();
    let body = html! {
        h1 { (title) }
        (nav(l))
        (overdue_banner(l, &overdue))
        p {
            (l.pick("在借及待办借阅 ", "Open loans ")) strong #open-loans { (open_loans) } " · "
            (l.pick("待同步到中心的库房变更 ", "Warehouse changes not yet at the hub ")) strong #unsent { (unsent) }
        }
        h2 { (l.pick("库房位置", "Locations")) }
        @if all.is_empty() {
            p.muted { (l.pick("还没有登记库房位置。", "No location recorded yet.")) }
        }
        table.locations #locations {
            thead { tr {
                th { (l.pick("编号", "Code")) } th { (l.pick("类型", "Kind")) } th { (l.pick("名称", "Name")) }
                th.num { (l.pick("占用/容量", "Held/capacity")) }
            } }
            tbody {
                @for loc in &listed {
                    tr data-code=(loc.code) {
                        td style=(format!("padding-left:{}em", depth(loc) as f32 * 1.2 + 0.3)) { (location_link(&loc.code)) }
                        td { (kind_label(l, &loc.kind)) }
                        td {
                            (loc.name)
                            @if loc.kind == "room" {
                                " · " a href=(format!("/warehouse/rooms/{}", segment(&loc.code))) { (l.pick("平面图", "grid")) }
                            }
                        }
                        td.num { (loc.held) @if let Some(c) = loc.capacity { " / " (c) } }
                    }
                }
            }
        }
        h2 { (l.pick("新增位置", "New location")) }
        form.wh-form #new-location data-api="/api/v1/warehouse/locations" {
            label { (l.pick("类型", "Kind")) " "
                select name="kind" {
                    @for kind in wh::KINDS {
                        @if admin || kind == "box" {
                            option value=(kind) selected[kind == "box"] { (kind_label(l, kind)) }
                        }
                    }
                }
            }
            label { (l.pick("编号", "Code")) " " input name="code" required placeholder="BOX-0001 / K01-L03"; }
            label { (l.pick("名称", "Name")) " " input name="name"; }
            label { (l.pick("上级编号", "Parent code")) " " input name="parent"; }
            label { (l.pick("容量", "Capacity")) " " input name="capacity" type="number" min="1" size="4"; }
            button type="submit" { (l.pick("新增", "Add")) }
            span.status {}
        }
        h2 { (l.pick("新建案卷", "New volume")) }
        form.wh-form #new-volume data-api="/api/v1/warehouse/volumes" {
            label { (l.pick("卷号", "Code")) " " input name="code" required placeholder="VOL-2019-0001"; }
            label { (l.pick("案卷题名", "Title")) " " input name="title" required size="30"; }
            label { (l.pick("所在盒", "Box")) " " input name="box" placeholder="BOX-0001"; }
            label { (l.pick("保管期限", "Retention")) " "
                select name="retention" {
                    option value="" { "—" }
                    option value="permanent" { (l.pick("永久", "permanent")) }
                    option value="30y" { (l.pick("30年", "30 years")) }
                    option value="10y" { (l.pick("10年", "10 years")) }
                }
            }
            button type="submit" { (l.pick("新建", "Create")) }
            span.status {}
        }
    };
    layout(&viewer, title, SCRIPTS, body).into_response()
}

pub(super) async fn room(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(code): Path<String>,
) -> Response {
    let l = viewer.lang;
    let loaded = state
        .db(move |_, store| wh::room_grid(store.conn(), &code).map_err(err(l)))
        .await;
    let grid = match loaded {
        Ok(grid) => grid,
        Err(e) => return viewer.fail(e),
    };
    let title = format!("{} {}", grid.room.name, grid.room.code);
    let rows = grid
        .columns
        .iter()
        .map(|c| c.cells.len())
        .max()
        .unwrap_or(0);
    let body = html! {
        h1 { (title) " · " (l.pick("库位平面图", "occupancy")) }
        (nav(l))
        p.muted { (l.pick("每列为一个密集架列（柜），自上而下为各节各层；格中为盒数与容量。", "One column per cabinet; shelves top down; each cell shows boxes and capacity.")) }
        @if grid.columns.is_empty() { p.muted { (l.pick("此库房还没有列。", "No cabinet in this room yet.")) } }
        table.grid #room-grid {
            thead { tr { @for column in &grid.columns { th { (location_link(&column.cabinet.code)) br; span.muted { (column.cabinet.name) } } } } }
            tbody {
                @for row in 0..rows {
                    tr {
                        @for column in &grid.columns {
                            @match column.cells.get(row) {
                                None => td.empty {},
                                Some(cell) => {
                                    @let held = cell.boxes.len();
                                    @let level = match cell.shelf.capacity {
                                        Some(c) if held >= c as usize => "full",
                                        _ if held == 0 => "free",
                                        _ => "part",
                                    };
                                    td class=(format!("cell {level}")) data-shelf=(cell.shelf.code) title=(cell.boxes.join(" ")) {
                                        (location_link(&cell.shelf.code)) br;
                                        strong { (held) } @if let Some(c) = cell.shelf.capacity { " / " (c) }
                                        (l.pick(" 盒", " boxes"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(&viewer, &title, SCRIPTS, body).into_response()
}

pub(super) async fn location(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(code): Path<String>,
) -> Response {
    let l = viewer.lang;
    let loaded = state
        .db(move |node, store| location_detail(store.conn(), &code, &today(node)).map_err(err(l)))
        .await;
    let d = match loaded {
        Ok(d) => d,
        Err(e) => return viewer.fail(e),
    };
    let title = format!("{} {}", kind_label(l, &d.location.kind), d.location.code);
    let body = html! {
        h1 { (title) " · " (d.location.name) }
        (nav(l))
        dl.file-meta {
            dt { (l.pick("位置", "Place")) } dd #place { (path_markup(&d.path)) }
            dt { (l.pick("占用/容量", "Held/capacity")) } dd { (d.location.held) @if let Some(c) = d.location.capacity { " / " (c) } }
            @if d.location.kind == "box" {
                dt { (l.pick("借阅状态", "Loan")) } dd #loan { (loan_markup(l, d.loan.as_ref())) }
            }
        }
        @if !d.children.is_empty() {
            h2 { (l.pick("下级", "Inside")) }
            ul { @for c in &d.children { li { (location_link(&c.code)) " " (kind_label(l, &c.kind)) " " (c.name) } } }
        }
        @if d.location.kind == "box" {
            h2 { (l.pick("盒内案卷", "Volumes in the box")) }
            ul #volumes { @for v in &d.volumes { li { (volume_link(&v.code)) " " (v.title) } } }
        }
        (history(l, &d.history))
    };
    layout(&viewer, &title, SCRIPTS, body).into_response()
}

fn history(l: Lang, events: &[dangan_sync::wire::WarehouseEvent]) -> Markup {
    use dangan_sync::wire::WarehouseChange as C;
    html! {
        h2 { (l.pick("变更记录", "History")) }
        table.history {
            tbody {
                @for e in events.iter().rev() {
                    tr {
                        td.muted { (e.recorded_at) } td { (e.actor) }
                        td { @match &e.change {
                            C::Location { parent, .. } => { (l.pick("位置：", "place: ")) (parent.as_deref().unwrap_or("—")) }
                            C::Volume { box_code, .. } => { (l.pick("案卷，所在盒：", "volume, box: ")) (box_code.as_deref().unwrap_or("—")) }
                            C::FileVolume { batch, file_seq, volume, .. } => { (l.pick("组卷：", "filing: ")) (batch) " #" (file_seq) " → " (volume.as_deref().unwrap_or("—")) }
                            C::Loan { loan, state, borrower, .. } => { (l.pick("借阅 ", "loan ")) (loan) "：" (loan_state_label(l, state)) " · " (borrower) }
                            C::Check { check, state, .. } => { (l.pick("盘点 ", "check ")) (check) "：" (state) }
                        } }
                    }
                }
            }
        }
    }
}

pub(super) async fn volume(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(code): Path<String>,
) -> Response {
    let l = viewer.lang;
    let loaded = state
        .db(move |node, store| volume_detail(store.conn(), &code, &today(node)).map_err(err(l)))
        .await;
    let d = match loaded {
        Ok(d) => d,
        Err(e) => return viewer.fail(e),
    };
    let title = format!("{} {}", l.pick("案卷", "Volume"), d.volume.code);
    let body = html! {
        h1 { (title) " · " (d.volume.title) }
        (nav(l))
        dl.file-meta {
            dt { (l.pick("位置", "Place")) } dd #place { (path_markup(&d.path)) }
            dt { (l.pick("借阅状态", "Loan")) } dd #loan { (loan_markup(l, d.loan.as_ref())) }
            dt { (l.pick("保管期限", "Retention")) } dd { (d.volume.retention.as_deref().unwrap_or("—")) }
            dt { (l.pick("起止日期", "Dates")) } dd { (d.volume.date_from.as_deref().unwrap_or("—")) " — " (d.volume.date_to.as_deref().unwrap_or("—")) }
        }
        h2 { (l.pick("卷内业务件", "Business files")) }
        table #volume-files {
            thead { tr { th { (l.pick("批次", "Batch")) } th.num { (l.pick("件号", "File")) } th { (l.pick("业务流水号", "Business no.")) } th { (l.pick("姓名", "Name")) } th { (l.pick("日期", "Date")) } } }
            tbody { @for f in &d.files { tr {
                td { a href=(super::batch_url(&f.batch)) { (f.batch) } } td.num { (f.file) }
                td { (f.business_number.as_deref().unwrap_or("—")) } td { (f.person_name.as_deref().unwrap_or("—")) } td { (f.date.as_deref().unwrap_or("—")) }
            } } }
        }
        form.wh-form #add-file data-api=(format!("/api/v1/warehouse/volumes/{}/files", segment(&d.volume.code))) {
            label { (l.pick("批次", "Batch")) " " input name="batch" required; }
            label { (l.pick("件号", "File")) " " input name="file" type="number" min="1" required size="4"; }
            button type="submit" { (l.pick("组入本卷", "Bind into this volume")) }
            span.status {}
        }
        (history(l, &d.history))
    };
    layout(&viewer, &title, SCRIPTS, body).into_response()
}

pub(super) async fn shelve(viewer: Viewer) -> Response {
    let l = viewer.lang;
    let title = l.pick("扫码上架", "Shelve by scanning");
    let body = html! {
        h1 { (title) }
        (nav(l))
        p { (l.pick("上架：先扫盒标签，再扫层位标签；装盒：先扫卷标签，再扫盒标签。扫码枪以键盘方式输入编号并回车，也可手工输入后回车。",
                    "Shelving: scan the box label, then the shelf label. Boxing: scan the volume label, then the box label. A handheld types the code and Enter; typing a code and Enter works too.")) }
        form #wedge autocomplete="off" {
            input #scan name="scan" autofocus size="32" placeholder=(l.pick("扫描或输入编号后回车", "scan or type a code, then Enter"));
        }
        p #prompt.prompt { (l.pick("请扫描盒标签或卷标签", "Scan a box or volume label")) }
        p #scan-status.status {}
        ol #shelved.log {}
        h2 { (l.pick("批量上架（CSV）", "Bulk shelving (CSV)")) }
        p.muted { (l.pick("每行“盒编号,层位编号”，UTF-8；任一行出错则整批不生效并指出行号。", "One `box,shelf` per line, UTF-8; one bad line changes nothing and is named.")) }
        input #csv-file type="file" accept=".csv,text/csv,text/plain";
        button #csv-upload type="button" { (l.pick("上传并上架", "Upload and shelve")) }
        span #csv-status.status {}
    };
    layout(&viewer, title, SCRIPTS, body).into_response()
}

pub(super) async fn loans(State(state): State<ApiState>, viewer: Viewer) -> Response {
    let l = viewer.lang;
    let loaded = state
        .db(move |node, store| {
            let today = today(node);
            let conn = store.conn();
            Ok((
                wh::loans(conn, LoanFilter::Overdue, None, &today).map_err(err(l))?,
                wh::loans(conn, LoanFilter::All, None, &today).map_err(err(l))?,
            ))
        })
        .await;
    let (overdue, all) = match loaded {
        Ok(x) => x,
        Err(e) => return viewer.fail(e),
    };
    let admin = viewer.user.role == Role::Admin;
    let handles = matches!(viewer.user.role, Role::Admin | Role::Operator);
    let title = l.pick("借阅管理", "Loans");
    let body = html! {
        h1 { (title) }
        (nav(l))
        (overdue_banner(l, &overdue))
        h2 { (l.pick("借阅申请", "Request a loan")) }
        form.wh-form #new-loan data-api="/api/v1/warehouse/loans" {
            label { (l.pick("卷号或盒号", "Volume or box")) " " input name="item" required size="16"; }
            label { (l.pick("借阅人", "Borrower")) " " input name="borrower" required; }
            label { (l.pick("借阅目的", "Purpose")) " " input name="purpose" required; }
            label { (l.pick("应还日期", "Due")) " " input name="due_date" type="date" required; }
            button type="submit" { (l.pick("提交申请", "Request")) }
            span.status {}
        }
        h2 { (l.pick("借阅记录", "Loans")) }
        table.loans #loans {
            thead { tr {
                th.num { "#" } th { (l.pick("原件", "Item")) } th { (l.pick("状态", "State")) } th { (l.pick("借阅人", "Borrower")) }
                th { (l.pick("目的", "Purpose")) } th { (l.pick("应还日期", "Due")) } th { (l.pick("申请人", "Requested by")) }
                th { (l.pick("审批人", "Approver")) } th { (l.pick("操作", "Actions")) }
            } }
            tbody {
                @for loan in &all {
                    tr #(format!("loan-{}", loan.id)) data-loan=(loan.id) data-state=(loan.state) .overdue[loan.overdue] {
                        td.num { (loan.id) } td { (item_link(&loan.item)) }
                        td { (loan_state_label(l, &loan.state)) @if loan.overdue { " " strong.error { (l.pick("已逾期", "overdue")) } } }
                        td { (loan.borrower) } td { (loan.purpose) } td { (loan.due_date) } td { (loan.requested_by) }
                        td { (loan.approved_by.as_deref().unwrap_or("")) @if let Some(note) = &loan.note { " · " span.muted { (note) } } }
                        td.actions {
                            @if loan.state == "requested" && admin {
                                button.step data-step="approve" { (l.pick("批准", "Approve")) }
                                button.step data-step="refuse" { (l.pick("拒绝", "Refuse")) }
                            }
                            @if loan.state == "approved" && handles { button.step data-step="lend" { (l.pick("出借", "Lend")) } }
                            @if loan.state == "lent" && handles { button.step data-step="return" { (l.pick("归还", "Return")) } }
                        }
                    }
                }
            }
        }
        p #loan-status.status {}
    };
    layout(&viewer, title, SCRIPTS, body).into_response()
}

pub(super) async fn checks(State(state): State<ApiState>, viewer: Viewer) -> Response {
    let l = viewer.lang;
    let loaded = state
        .db(move |_, store| wh::checks(store.conn()).map_err(err(l)))
        .await;
    let list = match loaded {
        Ok(x) => x,
        Err(e) => return viewer.fail(e),
    };
    let title = l.pick("库房盘点", "Inventory checks");
    let body = html! {
        h1 { (title) }
        (nav(l))
        form.wh-form #new-check data-api="/api/v1/warehouse/checks" data-then="/warehouse/checks/" {
            label { (l.pick("盘点范围（位置编号，含下级）", "Location to check (and everything under it)")) " " input name="root" required; }
            button type="submit" { (l.pick("开始盘点", "Start")) }
            span.status {}
        }
        table #checks {
            thead { tr { th.num { "#" } th { (l.pick("范围", "Location")) } th { (l.pick("状态", "State")) } th { (l.pick("开始", "Started")) } th.num { (l.pick("扫描数", "Scans")) } } }
            tbody { @for c in &list { tr {
                td.num { a href=(format!("/warehouse/checks/{}", c.id)) { (c.id) } } td { (location_link(&c.root)) }
                td { (if c.state == "open" { l.pick("进行中", "open") } else { l.pick("已结束", "finished") }) }
                td.muted { (c.started_by) " " (c.started_at) } td.num { (c.scans) }
            } } }
        }
    };
    layout(&viewer, title, SCRIPTS, body).into_response()
}

pub(super) async fn check(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Response {
    let l = viewer.lang;
    let loaded = state
        .db(move |node, store| wh::check_report(store.conn(), id, &today(node)).map_err(err(l)))
        .await;
    let report = match loaded {
        Ok(x) => x,
        Err(e) => return viewer.fail(e),
    };
    let open = report.check.state == "open";
    let title = format!("{} {}", l.pick("盘点", "Check"), id);
    let kind_text = |kind: &str| match kind {
        "missing" => l.pick("缺失", "missing"),
        "unexpected" => l.pick("多出", "unexpected"),
        "misplaced" => l.pick("错位", "misplaced"),
        _ => l.pick("借出中", "on loan"),
    };
    let body = html! {
        h1 { (title) " · " (report.check.root) }
        (nav(l))
        p {
            (l.pick("应有 ", "Expected ")) strong #expected { (report.expected) } " · "
            (l.pick("在位 ", "in place ")) strong #found { (report.found) } " · "
            (l.pick("差异 ", "discrepancies ")) strong #discrepancy-count { (report.discrepancies.iter().filter(|d| d.kind != "on_loan").count()) }
        }
        @if open {
            p { (l.pick("先扫层位（或库房、列）标签，再扫在该处找到的盒；盒后扫到的卷记为在该盒中。", "Scan a shelf label, then the boxes found there; volumes scanned after a box are recorded in it.")) }
            form #check-wedge data-check=(id) autocomplete="off" {
                input #scan name="scan" autofocus size="32" placeholder=(l.pick("扫描或输入编号后回车", "scan or type a code, then Enter"));
            }
            p #scan-status.status {
                @if let Some(at) = &report.check.current_location { (l.pick("当前位置：", "At: ")) (at) }
            }
            p { (l.pick("或上传扫码枪导出的文件（每行一个编号）：", "Or upload a handheld's file (one code per line): "))
                input #scan-file type="file" accept=".txt,.csv,text/plain";
                button #scan-upload type="button" { (l.pick("上传", "Upload")) } }
            button #check-finish type="button" data-check=(id) { (l.pick("结束盘点", "Finish the check")) }
        } @else {
            p.muted { (l.pick("盘点已结束：", "Finished: ")) (report.check.finished_by.as_deref().unwrap_or("")) " " (report.check.finished_at.as_deref().unwrap_or("")) }
        }
        h2 { (l.pick("差异", "Discrepancies")) }
        table #discrepancies data-check=(id) {
            thead { tr { th { (l.pick("类型", "Kind")) } th { (l.pick("编号", "Item")) } th { (l.pick("系统位置", "Recorded at")) } th { (l.pick("实际位置", "Found at")) } th { (l.pick("处理", "Resolution")) } } }
            tbody {
                @for d in &report.discrepancies {
                    tr data-item=(d.item) data-kind=(d.kind) {
                        td { (kind_text(&d.kind)) } td { (item_link(&d.item)) }
                        td { (d.expected.as_deref().unwrap_or("—")) } td { (d.found.as_deref().unwrap_or("—")) }
                        td {
                            @if let Some(r) = &d.resolution {
                                (if r.action == "relocate" { l.pick("已按实际位置更正", "relocated") } else { l.pick("已记录", "noted") })
                                ": " (r.note) " · " span.muted { (r.by) " " (r.at) }
                            } @else if d.kind != "on_loan" {
                                @if d.found.is_some() && d.kind != "missing" {
                                    button.resolve data-action="relocate" { (l.pick("按实际位置更正", "Relocate")) }
                                }
                                button.resolve data-action="note" { (l.pick("记录说明", "Note")) }
                            }
                        }
                    }
                }
            }
        }
        p #resolve-status.status {}
    };
    layout(&viewer, &title, SCRIPTS, body).into_response()
}

pub(super) async fn labels(viewer: Viewer) -> Response {
    let l = viewer.lang;
    let title = l.pick("打印标签", "Print labels");
    let body = html! {
        h1 { (title) }
        (nav(l))
        p { (l.pick("每行一个盒号、卷号或位置编号；生成 A4 标签纸（每张 2×7 枚，99.1×38.1 毫米）的 PDF，可重复打印。",
                    "One box, volume or location code per line; makes a PDF for A4 label stock (2 × 7 labels of 99.1 × 38.1 mm), re-printable.")) }
        form #label-form {
            textarea #label-codes name="codes" rows="10" cols="30" required {}
            br;
            label { (l.pick("首张已用枚数", "Positions already used on the first sheet")) " " input #label-start name="start" type="number" min="0" max="13" value="0" size="3"; }
            button type="submit" { (l.pick("生成 PDF", "Make the PDF")) }
        }
        p #label-status.status {}
    };
    layout(&viewer, title, SCRIPTS, body).into_response()
}
