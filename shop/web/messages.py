"""The pages' message catalog: Chinese (zh-CN, the default) with English beside it, or
English alone (``?lang=en``, remembered in a cookie).

A plain dict, not gettext: the pages have a few hundred words, and each entry keeps
the two languages side by side so a reviewer sees both at once. ``{name}`` fields are
filled with ``str.format`` after escaping.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"

#: key → (中文, English)
MESSAGES: dict[str, tuple[str, str]] = {
    # layout, sign-in
    "app_name": ("山货", "Shanhuo"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "email": ("邮箱", "Email"),
    "password": ("密码", "Password"),
    "signed_in_as": ("当前用户：{name}", "Signed in as {name}"),
    "wrong_login": ("邮箱或密码不对", "Wrong email or password"),
    "too_many_logins": ("尝试太多次，请等一分钟再试", "Too many attempts; wait a minute"),
    "signed_out": ("已退出", "You are signed out"),
    "account": ("账户", "Account"),
    "change_password": ("修改密码", "Change password"),
    "current_password": ("当前密码", "Current password"),
    "new_password": ("新密码（至少 8 个字符）", "New password (at least 8 characters)"),
    "password_changed": (
        "密码已修改，其他设备已退出",
        "Password changed; every other device is signed out",
    ),
    "wrong_current_password": ("当前密码不对", "The current password is wrong"),
    "sign_out_everywhere": ("在所有设备上退出", "Sign out everywhere"),
    "sign_out_everywhere_note": (
        "所有设备上的登录和应用令牌都会失效，包括这一台。",
        "Ends every session and app token, on every device, this one too.",
    ),
    "signed_out_everywhere": ("已在所有设备上退出", "You are signed out everywhere"),
    "language": ("English", "中文"),
    "home": ("首页", "Home"),
    "your_pages": ("你的页面", "Your pages"),
    "page_workshop": ("工坊任务", "Workshop tasks"),
    "page_farmer": ("我的结算单", "My statement"),
    "page_studio": ("直播间", "Studio"),
    "live_now": ("正在直播", "Live now"),
    "no_live_now": ("现在没有直播", "Nothing is live right now"),
    "api_docs": ("接口文档", "API documentation"),
    "back": ("返回", "Back"),
    # errors
    "error_title": ("出错了", "Something went wrong"),
    "error_400": ("请求有问题", "Bad request"),
    "error_403": ("这个页面不是给你的", "This page is not for you"),
    "error_403_text": (
        "你的账号没有打开这个页面的权限。",
        "Your account may not open this page.",
    ),
    "error_404": ("找不到这个页面", "Page not found"),
    "error_404_text": ("地址可能写错了，或者内容已经不在了。", "The address may be wrong."),
    "error_405": ("不能这样打开", "Not allowed this way"),
    "error_409": ("现在不能这样做", "Not possible right now"),
    "error_422": ("填写的内容有问题", "Something in the form is not right"),
    "error_429": ("太频繁了", "Too many requests"),
    "error_500": ("服务器出错了", "Something went wrong on our side"),
    "error_500_text": (
        "我们已经记录下来了，请稍后再试。",
        "It has been logged; please try again later.",
    ),
    "error_503": ("暂时无法服务，请稍后再试", "Temporarily unavailable; try again in a moment"),
    "csrf_failed": (
        "表单已过期，请返回、刷新页面再试。",
        "This form has expired; go back, reload the page and try again.",
    ),
    "go_home": ("回首页", "Go to the start page"),
    # workshop
    "workshop_title": ("打包任务", "Packing tasks"),
    "claim_next": ("领取下一个任务", "Claim the next task"),
    "claimed": ("已领取任务 #{id}", "Claimed task #{id}"),
    "queue_empty": ("现在没有要打包的订单", "No parcels to pack right now"),
    "no_workshop": (
        "你还没有加入工坊，请联系管理员。",
        "You are not in a workshop yet; ask the operator.",
    ),
    "your_task": ("你手上的任务", "Your task"),
    "task_no": ("任务 #{id} · 订单 #{order}", "Task #{id} · order #{order}"),
    "batch_no": ("任务 #{id} · 来料加工 {pieces} 件", "Task #{id} · piece work, {pieces} pieces"),
    "pieces_done": ("做完的件数（全部做完可不填）", "Pieces done (leave empty if all)"),
    "recipient_region": ("收件地区", "Recipient region"),
    "piece_rate": ("这单工钱", "Pay for this parcel"),
    "expected_weight": ("应重", "Expected weight"),
    "lease_until": ("请在 {time} 前完成", "Finish before {time}"),
    "print_slip": ("打印面单", "Print the slip"),
    "packed_weight": ("称重（克，可不填）", "Packed weight (g, optional)"),
    "done": ("打包好了", "Done"),
    "release": ("放回去", "Release"),
    "completed": ("任务 #{id} 完成，工钱 {amount}", "Task #{id} done, you earned {amount}"),
    "released": ("任务 #{id} 已放回", "Task #{id} is back in the queue"),
    "earnings_today": ("今天收入", "Earned today"),
    "earnings_week": ("本周收入", "Earned this week"),
    "tasks_count": ("{n} 单", "{n} parcels"),
    "weight_invalid": ("重量要填整数克", "Give the weight in whole grams"),
    # farmer
    "farmer_title": ("结算单", "Statement"),
    "contracts": ("合同", "Contracts"),
    "no_contracts": ("还没有合同", "No contracts yet"),
    "product": ("产品", "Product"),
    "grade": ("等级", "Grade"),
    "premium": ("加价", "Premium"),
    "committed": ("约定重量", "Committed"),
    "delivered": ("已交", "Delivered"),
    "period": ("期限", "Period"),
    "state": ("状态", "State"),
    "accept_contract": ("接受合同", "Accept the contract"),
    "contract_accepted": ("合同 #{id} 已接受", "Contract #{id} accepted"),
    "deliveries": ("交货记录", "Deliveries"),
    "no_deliveries": ("还没有交货记录", "No deliveries yet"),
    "date": ("日期", "Date"),
    "weight": ("重量", "Weight"),
    "market_price": ("市场价", "Market price"),
    "amount": ("金额", "Amount"),
    "in_payout": ("付款单", "Payout"),
    "not_yet_paid": ("未结算", "Not in a payout yet"),
    "older": ("更早的记录", "Older entries"),
    "payouts": ("付款", "Payouts"),
    "no_payouts": ("还没有付款", "No payouts yet"),
    "reason": ("原因", "Reason"),
    "paid_at": ("付款时间", "Paid at"),
    "totals": ("合计", "Totals"),
    "total_delivered": ("交货金额", "Delivered"),
    "total_adjustments": ("调整", "Adjustments"),
    "total_paid": ("已付", "Paid"),
    "total_pending": ("待付", "Still owed"),
    # streamer
    "studio_title": ("我的直播", "My live sessions"),
    "no_sessions": ("还没有直播", "No sessions yet"),
    "new_session": ("安排一场直播", "Schedule a session"),
    "title": ("标题", "Title"),
    "scheduled_at": ("开播时间", "Starts at"),
    "schedule": ("安排", "Schedule"),
    "scheduled": ("直播 #{id} 已安排", "Session #{id} scheduled"),
    "open": ("打开", "Open"),
    "listings": ("商品", "Listings"),
    "no_listings": ("还没有上架商品", "No listings yet"),
    "add_listing": ("上架商品", "Add a listing"),
    "flash_price": ("直播价（元）", "Flash price (¥)"),
    "allotted_qty": ("拨出数量", "Units allotted"),
    "per_buyer_limit": ("每人限购（可不填）", "Per-buyer limit (optional)"),
    "listing_added": ("商品 #{id} 已上架", "Listing #{id} added"),
    "remaining": ("剩余", "Left"),
    "pin": ("置顶", "Pin"),
    "pinned": ("已置顶", "Pinned"),
    "pinned_msg": ("商品 #{id} 已置顶", "Listing #{id} pinned"),
    "start": ("开始直播", "Start"),
    "started": ("直播开始了", "The session is live"),
    "end": ("结束直播", "End"),
    "ended_msg": ("直播已结束，剩余库存已退回", "Session ended; what was left went back to stock"),
    "stats": ("数据", "Stats"),
    "orders": ("订单", "Orders"),
    "paid_orders": ("已付款订单", "Paid orders"),
    "units": ("件数", "Units"),
    "gmv": ("成交额", "Sales"),
    "buyers": ("买家", "Buyers"),
    "returning_buyers": ("回头客", "Returning buyers"),
    "recent_orders": ("最近订单", "Recent orders"),
    "no_orders": ("还没有订单", "No orders yet"),
    "storefront": ("买家看到的页面", "The buyers' page"),
    "price_invalid": ("价格要写成 12 或 12.34", "Write the price as 12 or 12.34"),
    "number_invalid": ("要填一个整数", "Give a whole number"),
    "choose_product": ("选择产品", "Choose a product"),
    "in_stock": ("库存 {n}", "{n} in stock"),
    "listing_added_named": ("{name} 已上架", "{name} is listed"),
    "listing_saved": ("{name} 已修改", "{name} is changed"),
    "listing_withdrawn": (
        "{name} 已下架，剩余的已退回库存",
        "{name} withdrawn; what was left went back to stock",
    ),
    "pinned_named": ("{name} 已置顶", "{name} is pinned"),
    "edit_listing": ("修改", "Change"),
    "save": ("保存", "Save"),
    "withdraw": ("下架", "Withdraw"),
    "withdrawn": ("已下架", "Withdrawn"),
    "confirm_title": ("请确认", "Please confirm"),
    "confirm_yes": ("确认", "Confirm"),
    "confirm_no": ("不了，返回", "No, go back"),
    "confirm_cheap": (
        "{name} 的直播价 {price} 不到原价 {list_price} 的一半。确定吗？",
        "The flash price of {name}, {price}, is under half its list price {list_price}. Sure?",
    ),
    "confirm_start": ("现在开始直播？", "Start the live session now?"),
    "confirm_start_early": (
        "这场直播安排在 {time} 开播，现在还没到时间。确定现在就开始吗？",
        "This session is scheduled for {time}, which has not come yet. Start it now anyway?",
    ),
    "confirm_end": (
        "结束直播？结束后买家不能再下单，剩余的商品会退回库存。",
        "End the session? Buyers can no longer order, and what is left goes back to stock.",
    ),
    "summary": ("直播小结", "Summary"),
    "sold_units": ("卖出", "Sold"),
    "returned_qty": ("退回库存", "Back to stock"),
    "list_price": ("原价", "List price"),
    # session states
    "state_scheduled": ("未开始", "Scheduled"),
    "state_live": ("直播中", "Live"),
    "state_ended": ("已结束", "Ended"),
    # storefront and orders
    "buy": ("立即购买", "Buy now"),
    "sold_out": ("已售完", "Sold out"),
    "not_started": ("直播还没开始，{time} 开播", "Not live yet; starts {time}"),
    "session_ended": ("这场直播已经结束了", "This live session has ended"),
    "nothing_pinned": ("主播还没有置顶商品", "Nothing pinned yet"),
    "other_listings": ("其他商品", "More products"),
    "limit_each": ("每人限购 {n}", "Limit {n} each"),
    "quantity": ("数量", "Quantity"),
    "ship_name": ("收件人", "Recipient"),
    "ship_phone": ("电话", "Phone"),
    "ship_address": ("地址", "Address"),
    "ship_region": ("省份／地区", "Province / region"),
    "place_order": ("提交订单", "Place the order"),
    "order_title": ("订单 #{id}", "Order #{id}"),
    "total": ("合计", "Total"),
    "pay_before": ("请在 {time} 前付款", "Pay before {time}"),
    "pay_sandbox": ("付款（测试环境）", "Pay (sandbox)"),
    "pay_in_app": (
        "请在山货 App 里用银行卡付款。",
        "Pay by card in the Shanhuo app.",
    ),
    "paid_thanks": ("付款成功，谢谢！", "Paid. Thank you!"),
    "order_state": ("订单状态", "Order state"),
    "back_to_live": ("回到直播", "Back to the live session"),
    # order states
    "order_pending_payment": ("待付款", "Waiting for payment"),
    "order_paid": ("已付款", "Paid"),
    "order_packing": ("打包中", "Being packed"),
    "order_packed": ("已打包", "Packed"),
    "order_shipped": ("已发货", "Shipped"),
    "order_delivered": ("已送达", "Delivered"),
    "order_cancelled": ("已取消", "Cancelled"),
    "order_expired": ("已过期", "Expired"),
    "order_refunded": ("已退款", "Refunded"),
    # contract and payout states
    "contract_draft": ("待接受", "Draft"),
    "contract_active": ("生效中", "Active"),
    "contract_completed": ("已完成", "Completed"),
    "contract_terminated": ("已终止", "Terminated"),
    "payout_pending": ("待付", "Pending"),
    "payout_sending": ("付款中", "Sending"),
    "payout_paid": ("已付", "Paid"),
    "payout_failed": ("失败，下次重试", "Failed, will retry"),
    # the trace page (/t/{code}), the farmer's lots, the impact report
    "trace_title": ("这件山货从哪里来", "Where this parcel came from"),
    "trace_product": ("产品", "Product"),
    "trace_farmer": ("农户", "Farmer"),
    "trace_village": ("村", "Village"),
    "trace_delivered": ("交货日期", "Delivered on"),
    "trace_grade": ("等级", "Grade"),
    "trace_guaranteed": (
        "按保底收购合同收购（市场价上浮 10–15%）",
        "Bought under a guaranteed-price contract (market price + 10–15 %)",
    ),
    "trace_workshop": ("包装工坊", "Packed at"),
    "trace_packed": ("包装日期", "Packed on"),
    "trace_lots": ("批次", "Lots"),
    "trace_unknown": ("没有批次记录", "No lot on record"),
    "my_lots": ("我的批次到了谁手里", "Your lots that reached buyers"),
    "lot_code": ("批次号", "Lot"),
    "lot_received": ("入库", "Received"),
    "lot_parcels": ("寄出包裹", "Parcels sent"),
    "no_lots": ("还没有批次", "No lots yet"),
    "impact_title": ("工坊带动就业报告", "Workshop impact report"),
    "impact_year": ("年份", "Year"),
    "impact_workshop": ("工坊", "Workshop"),
    "impact_workers": ("人数", "Workers"),
    "impact_parcels": ("包裹", "Parcels"),
    "impact_pieces": ("计件", "Pieces"),
    "impact_wages": ("工资", "Wages"),
    "impact_median": ("人均月工资中位数", "Median monthly wage"),
    "impact_totals": ("全县合计", "County total"),
    "impact_disabled": ("助残工坊合计", "Workshops serving disabled workers"),
    "impact_by_month": ("每月领到工资的人数", "Workers paid each month"),
    "impact_csv": ("下载 CSV", "Download CSV"),
    "page_impact": ("带动就业报告", "Impact report"),
}


def text(key: str, lang: str, **fields: Any) -> str:
    """The plain text of ``key`` in ``lang`` (English alone, or Chinese then English)."""
    zh, en = MESSAGES[key]
    if lang == "en":
        return en.format(**fields)
    return f"{zh.format(**fields)} {en.format(**fields)}"


def markup(key: str, lang: str, **fields: Any) -> Markup:
    """``key`` as HTML: Chinese with the English beside it in a ``lang="en"`` span."""
    safe = {name: escape(value) for name, value in fields.items()}
    zh, en = MESSAGES[key]
    if lang == "en":
        return Markup(escape(en)).format(**safe) if safe else Markup(escape(en))
    zh_html = Markup(escape(zh)).format(**safe) if safe else Markup(escape(zh))
    en_html = Markup(escape(en)).format(**safe) if safe else Markup(escape(en))
    return Markup('{} <span class="en" lang="en">{}</span>').format(zh_html, en_html)
