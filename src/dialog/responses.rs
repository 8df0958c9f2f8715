//! Platform default responses per intent (`intents/responses.toml`, compiled in) and the short
//! names clarifying questions show as buttons.

use std::collections::HashMap;

use serde::Deserialize;

use super::Lang;

/// What the bot says for a confident intent the shop's FAQ does not cover.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IntentResponse {
    pub zh: String,
    pub en: String,
    #[serde(default)]
    pub buttons_zh: Vec<String>,
    #[serde(default)]
    pub buttons_en: Vec<String>,
    /// Values the reply needs before it can help (`order_number`).
    #[serde(default)]
    pub needs: Vec<String>,
    /// The merchant webhook action, once the needed values are known.
    #[serde(default)]
    pub action: Option<String>,
}

impl IntentResponse {
    pub fn text(&self, lang: Lang) -> &str {
        match lang {
            Lang::Zh => &self.zh,
            Lang::En => &self.en,
        }
    }

    pub fn buttons(&self, lang: Lang) -> &[String] {
        match lang {
            Lang::Zh => &self.buttons_zh,
            Lang::En => &self.buttons_en,
        }
    }
}

/// The bundled responses.
pub fn bundled() -> HashMap<String, IntentResponse> {
    toml::from_str(include_str!("../../intents/responses.toml"))
        .expect("intents/responses.toml is valid (checked by a test)")
}

/// How an intent reads on a button.
pub fn intent_name(intent: &str, lang: Lang) -> String {
    let (zh, en) = match intent {
        "cancel_order" => ("取消订单", "Cancel an order"),
        "care_instructions" => ("洗涤保养", "Care instructions"),
        "change_address" => ("修改地址", "Change address"),
        "complaint" => ("投诉", "Complaint"),
        "coupon" => ("优惠券", "Coupons"),
        "damaged_package" => ("商品破损", "Damaged item"),
        "delivery_not_received" => ("显示签收没收到", "Delivered but not received"),
        "exchange" => ("换货", "Exchange"),
        "express_company" => ("快递公司", "Courier"),
        "gift_wrap" => ("礼品包装", "Gift wrap"),
        "human_agent" => ("转人工", "Talk to a person"),
        "invoice" => ("发票", "Invoice"),
        "membership_points" => ("会员积分", "Points"),
        "missing_item" => ("少件漏发", "Missing item"),
        "modify_order" => ("修改订单", "Change my order"),
        "payment_methods" => ("支付方式", "Payment methods"),
        "payment_problem" => ("支付问题", "Payment problem"),
        "price_calculation" => ("到手价计算", "Final price"),
        "price_protection" => ("价格保护", "Price protection"),
        "product_info" => ("商品详情", "Product details"),
        "product_quality" => ("质量问题", "Quality"),
        "promotion_activity" => ("店铺活动", "Promotions"),
        "refund_status" => ("退款进度", "Refund status"),
        "repair_warranty" => ("维修保修", "Repair and warranty"),
        "return_refund" => ("退货退款", "Returns and refunds"),
        "shipping_fee" => ("运费", "Shipping fee"),
        "shipping_time" => ("发货时间", "Shipping time"),
        "size_advice" => ("尺码推荐", "Size advice"),
        "stock_availability" => ("有没有货", "Stock"),
        "urge_shipment" => ("催发货", "Hurry my order"),
        "where_is_my_parcel" => ("查物流", "Track my parcel"),
        "wrong_item" => ("发错货", "Wrong item"),
        other => (other, other),
    };
    match lang {
        Lang::Zh => zh.to_string(),
        Lang::En => en.to_string(),
    }
}
