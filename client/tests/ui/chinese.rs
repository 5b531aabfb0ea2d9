//! Chinese text renders: every screen in Chinese, with Chinese messages, and not one missing glyph (the harness
//! panics on a character no font can draw).

use chatlab_client::ui::backend::Problem;
use chatlab_client::ui::i18n::Lang;
use chatlab_proto::chat::Target;
use egui_kittest::kittest::Queryable;

use crate::harness::{app, name, sign_in, signed_in};

#[test]
fn the_sign_in_screen_in_chinese_has_every_glyph() {
    let (mut harness, _control) = app(Lang::Zh);
    let t = Lang::Zh.texts();
    harness.run();
    harness.get_by_label(t.register);
    sign_in(&mut harness, t, "ann", "错误的密码", t.log_in);
    harness.get_by_label("用户名不存在或密码错误。");
}

#[test]
fn chat_and_statistics_in_chinese_render_without_missing_glyphs() {
    let (mut harness, control) = signed_in(Lang::Zh);
    let t = Lang::Zh.texts();
    control.set_online(&name("li.lei"), true);
    control.incoming(
        &name("li.lei"),
        Target::World,
        "大家好！欢迎来到世界聊天室，今天我们学习《计算机网络》：丢包、重传与拥塞。",
    );
    control.incoming(&name("li.lei"), Target::User(name("ann")), "韩梅梅，你好吗？");
    harness.get_by_label(t.statistics).click();
    harness.run();
    assert!(harness.query_all_by_label_contains("世界聊天室").count() >= 2, "side list, heading and message");
    harness.get_by_label(t.online_users);
    harness.get_by_label(t.impair_title);
    // The name shows in the side list and above the world message; the side list comes first in the tree.
    harness.query_all_by_label("li.lei").next().expect("li.lei in the side list").click();
    harness.run();
    harness.get_by_label("韩梅梅，你好吗？");
    control.lose_connection(Problem::Other(String::from("网络不可达")));
    harness.run_steps(3);
    harness.get_by_label_contains("连接已断开");
}

#[test]
fn the_language_can_be_switched_in_the_app() {
    let (mut harness, _control) = app(Lang::En);
    harness.state_mut().set_lang(Lang::Zh);
    harness.run();
    harness.get_by_label(Lang::Zh.texts().sign_in_title);
    assert_eq!(harness.state().lang(), Lang::Zh);
}
